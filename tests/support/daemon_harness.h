// DaemonHarness: the real hvmmd on a temporary socket, with a temporary configuration file and
// state directory, for the daemon's tests and benchmarks. start() waits until gRPC health says
// SERVING; the destructor sends SIGTERM (and SIGKILL if it does not exit). Header-only.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "child_process.h"
#include "grpc_raw.h"

namespace hvmm::testing {

// A temporary directory, removed with its contents by the destructor.
struct TempDir {
  TempDir() {
    std::string pattern = "/tmp/hvmmd-test-XXXXXX";
    path = ::mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path;
};

class DaemonHarness {
 public:
  struct Options {
    std::string hvmmd;       // the daemon binary
    std::string vm_process;  // what it runs as VM processes
    unsigned vmid_bits = 8;
    std::string extra_config;             // more lines of the configuration file
    std::vector<std::string> extra_args;  // more flags
  };

  explicit DaemonHarness(Options options) : options_(std::move(options)) {
    socket_ = dir_.path + "/hvmmd.sock";
    state_dir_ = dir_.path + "/state";
    config_ = dir_.path + "/hvmmd.conf";
    std::ofstream config(config_);
    config << "# written by the test\n"
           << "socket = \"" << socket_ << "\"\n"
           << "state-dir = \"" << state_dir_ << "\"\n"
           << "vm-process = \"" << options_.vm_process << "\"\n"
           << "vmid-bits = " << options_.vmid_bits << "\n"
           << "stop-grace-ms = 3000\n"
           << options_.extra_config;
  }
  ~DaemonHarness() { stop(); }
  DaemonHarness(const DaemonHarness&) = delete;
  DaemonHarness& operator=(const DaemonHarness&) = delete;

  // Start hvmmd and wait (up to `timeout`) for SERVING; false when it did not come up.
  bool start(std::chrono::seconds timeout = std::chrono::seconds(20)) {
    std::vector<std::string> argv = {options_.hvmmd, "--config", config_};
    argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
    process_ = std::make_unique<ChildProcess>(argv, /*merge_stderr=*/true);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::filesystem::exists(socket_) && health_status(channel()) == 1) {
        return true;
      }
      siginfo_t info{};
      // WNOWAIT: see the exit without reaping it (stop() collects the status and the log).
      if (::waitid(P_PID, static_cast<id_t>(process_->pid()), &info, WEXITED | WNOHANG | WNOWAIT) ==
              0 &&
          info.si_pid == process_->pid()) {
        ended_ = true;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // SIGTERM, then wait for the exit status (128+N for a signal; -1 when not running).
  int stop(std::chrono::seconds timeout = std::chrono::seconds(30)) {
    if (!process_ || exited_) {
      return exit_status_;
    }
    if (!ended_) {
      ::kill(process_->pid(), SIGTERM);
    }
    RunResult result = process_->wait(timeout);
    exited_ = true;
    exit_status_ = result.timed_out ? -2 : result.status;
    log_ = result.out + result.err;
    return exit_status_;
  }

  std::shared_ptr<grpc::Channel> channel() const {
    return grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
  }

  pid_t pid() const { return process_ ? process_->pid() : -1; }
  const std::string& socket() const { return socket_; }
  const std::string& state_dir() const { return state_dir_; }
  const std::string& dir() const { return dir_.path; }
  // The daemon's stderr so far (all of it after stop()).
  std::string log() const { return exited_ ? log_ : (process_ ? process_->stdout_so_far() : ""); }

 private:
  Options options_;
  TempDir dir_;
  std::string socket_;
  std::string state_dir_;
  std::string config_;
  std::unique_ptr<ChildProcess> process_;
  bool exited_ = false;  // reaped by stop()
  bool ended_ = false;   // seen to have exited by start()
  int exit_status_ = -1;
  std::string log_;
};

}  // namespace hvmm::testing
