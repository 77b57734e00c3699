// HvmmdProcess: the real hvmmd of this build on a temporary unix socket, with a temporary
// config file and state directory (console logs, the fault log), started for one test and
// stopped (SIGTERM, then SIGKILL) when the test ends. The daemon's own output goes to a log
// file in the same directory, which failed tests print.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "hvmm/base/result.h"
#include "subprocess.h"

namespace hvmm::e2e {

struct HvmmdOptions {
  uint32_t vmid_bits = 8;
  // More config keys (the long option names), written into the config file after the
  // fixture's own: socket, state-dir, vm-process, vmid-bits, log-level.
  std::map<std::string, std::string> config;
  // How long the daemon may take to answer its health check with SERVING.
  std::chrono::milliseconds ready_timeout{30000};
};

class HvmmdProcess {
 public:
  // Write the config, start hvmmd and wait until its health check answers SERVING.
  static Result<std::unique_ptr<HvmmdProcess>> start(const HvmmdOptions& options = {});
  ~HvmmdProcess();
  HvmmdProcess(const HvmmdProcess&) = delete;
  HvmmdProcess& operator=(const HvmmdProcess&) = delete;

  const std::string& socket() const { return socket_; }
  const std::string& directory() const { return directory_; }
  const std::string& state_dir() const { return state_dir_; }
  pid_t pid() const { return process_.pid(); }
  // A new channel to the daemon's socket.
  std::shared_ptr<grpc::Channel> channel() const;
  // What the daemon printed so far (its log).
  std::string log() const;
  // Whether the daemon still runs (a test checks it survived something).
  bool running();
  // SIGTERM and wait up to `timeout` for the exit: the status, or an error when it hung.
  Result<ExitStatus> terminate(std::chrono::milliseconds timeout);

 private:
  HvmmdProcess(std::string directory, Subprocess process);
  Result<void> wait_serving(std::chrono::milliseconds timeout);

  std::string directory_;
  std::string socket_;
  std::string state_dir_;
  std::string log_file_;
  Subprocess process_;
};

}  // namespace hvmm::e2e
