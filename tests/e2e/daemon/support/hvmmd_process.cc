// HvmmdProcess (hvmmd_process.h).
#include "hvmmd_process.h"

#include <signal.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "e2e_binaries.h"
#include "hvmm/daemon/client/health_check.h"

namespace hvmm::e2e {

namespace {

// A new directory under /tmp (short: the socket path must fit sockaddr_un's 108 bytes).
Result<std::string> make_directory() {
  char path[] = "/tmp/hvmm-e2e-XXXXXX";
  if (::mkdtemp(path) == nullptr) {
    return make_error(ErrorCode::kInternal, "mkdtemp: {}", std::strerror(errno));
  }
  return std::string(path);
}

// The config file: one `key = "value"` a line (CLI11's config format).
Result<void> write_config(const std::string& path,
                          const std::map<std::string, std::string>& entries) {
  std::ofstream file(path);
  for (const auto& [key, value] : entries) {
    file << key << " = \"" << value << "\"\n";
  }
  file.close();
  if (!file) {
    return make_error(ErrorCode::kInternal, "cannot write {}", path);
  }
  return Ok();
}

}  // namespace

Result<std::unique_ptr<HvmmdProcess>> HvmmdProcess::start(const HvmmdOptions& options) {
  const Binaries& paths = binaries();
  if (paths.hvmmd.empty()) {
    return make_error(ErrorCode::kUnavailable, "hvmmd is not part of this build");
  }
  auto directory = make_directory();
  HVMM_TRY(directory);
  const std::string state_dir = *directory + "/state";
  std::filesystem::create_directory(state_dir);
  std::map<std::string, std::string> config{
      {"socket", *directory + "/hvmmd.sock"},
      {"state-dir", state_dir},
      {"vm-process", paths.hvmm_vm},
      {"vmid-bits", std::to_string(options.vmid_bits)},
      {"log-level", "debug"},
  };
  for (const auto& [key, value] : options.config) {
    config[key] = value;
  }
  const std::string config_file = *directory + "/hvmmd.conf";
  HVMM_TRY(write_config(config_file, config));
  auto process =
      Subprocess::spawn({paths.hvmmd, "--config", config_file}, *directory + "/hvmmd.log");
  if (!process) {
    std::filesystem::remove_all(*directory);
    return process.error();
  }
  std::unique_ptr<HvmmdProcess> daemon(new HvmmdProcess(*directory, std::move(*process)));
  daemon->socket_ = config["socket"];
  auto ready = daemon->wait_serving(options.ready_timeout);
  if (!ready) {
    return make_error(ready.error().code, "{}; hvmmd's log:\n{}", ready.error().message,
                      daemon->log());
  }
  return daemon;
}

HvmmdProcess::HvmmdProcess(std::string directory, Subprocess process)
    : directory_(std::move(directory)),
      socket_(directory_ + "/hvmmd.sock"),
      state_dir_(directory_ + "/state"),
      log_file_(directory_ + "/hvmmd.log"),
      process_(std::move(process)) {}

HvmmdProcess::~HvmmdProcess() {
  // A graceful stop first, so the daemon stops its VMs; the group kill is the backstop.
  if (running()) {
    process_.signal(SIGTERM);
    if (!process_.wait(std::chrono::seconds(30))) {
      process_.kill();
    }
  }
  std::error_code ignored;
  std::filesystem::remove_all(directory_, ignored);
}

std::shared_ptr<grpc::Channel> HvmmdProcess::channel() const {
  grpc::ChannelArguments arguments;
  // Each test's channel is its own: no subchannel shared with another test's daemon.
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel("unix:" + socket_, grpc::InsecureChannelCredentials(),
                                   arguments);
}

std::string HvmmdProcess::log() const {
  return read_text_file(log_file_);
}

bool HvmmdProcess::running() {
  return !process_.poll().has_value();
}

Result<ExitStatus> HvmmdProcess::terminate(std::chrono::milliseconds timeout) {
  process_.signal(SIGTERM);
  auto status = process_.wait(timeout);
  if (!status) {
    process_.kill();
    return make_error(ErrorCode::kInternal, "hvmmd did not exit within {} ms of SIGTERM",
                      timeout.count());
  }
  return *status;
}

Result<void> HvmmdProcess::wait_serving(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto channel = this->channel();
  std::string last = "the socket never appeared";
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto status = process_.poll()) {
      return make_error(ErrorCode::kUnavailable, "hvmmd ended before serving ({})",
                        status->describe());
    }
    if (std::filesystem::exists(socket_)) {
      auto health = client::check_health(channel, std::chrono::milliseconds(1000));
      if (health && *health == client::kHealthServing) {
        return Ok();
      }
      last = health ? "health status " + std::to_string(*health) : health.error().message;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return make_error(ErrorCode::kUnavailable, "hvmmd did not serve within {} ms: {}",
                    timeout.count(), last);
}

}  // namespace hvmm::e2e
