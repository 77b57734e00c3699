// The hvmmd process (daemon.h).
#include "hvmm/daemon/server/daemon.h"

#include <signal.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdio>
#include <filesystem>
#include <future>
#include <thread>

#include "hvmm/daemon/server/grpc_server.h"
#include "hvmm/daemon/server/host_policy.h"
#include "hvmm/daemon/server/log.h"
#include "hvmm/daemon/server/unix_listener.h"
#include "hvmm/daemon/server/vm_manager.h"

namespace hvmm::daemon {

namespace asio = boost::asio;

namespace {

constexpr std::chrono::milliseconds kRpcGrace(2000);

int start_failed(const std::string& message) {
  log::error("hvmmd cannot start", {{"error", message}});
  std::fprintf(stderr, "hvmmd: %s\n", message.c_str());
  return kDaemonStartFailed;
}

// The parts that live as long as the daemon, in the order they are torn down (reverse).
struct Parts {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::unique_ptr<FaultFile> faults;
  // Before the VMs: a VM's pending requests fail as it goes, into the policy's callbacks.
  std::unique_ptr<HostPolicy> policy;
  std::unique_ptr<VmManager> vms;
  asio::thread_pool work{2};
  std::unique_ptr<Backend> backend;
  std::unique_ptr<GrpcServer> server;
  std::unique_ptr<UnixListener> listener;
};

void warn_about_vm_process(const std::string& path) {
  if (::access(path.c_str(), X_OK) != 0) {
    log::warn("the VM process is not executable: Start will fail until it is",
              {{"vm_process", path}});
  }
}

HostPolicy::Options policy_options(const DaemonConfig& config) {
  HostPolicy::Options options;
  options.meminfo_path = config.host_meminfo;
  options.pressure_path = config.host_pressure;
  hvmm::v1::HostPolicy& policy = options.initial;
  policy.set_enabled(config.policy_enabled);
  policy.set_dry_run(config.policy_dry_run);
  policy.set_min_available_bytes(config.policy_min_available_bytes);
  policy.set_max_vm_rss_bytes(config.policy_max_vm_rss_bytes);
  policy.set_max_pressure_some_avg10(config.policy_max_pressure);
  policy.set_hysteresis(config.policy_hysteresis);
  policy.set_interval_ms(config.policy_interval_ms);
  policy.set_step_bytes(config.policy_step_bytes);
  policy.set_hold_rounds(config.policy_hold_rounds);
  policy.set_balloon_timeout_ms(config.policy_balloon_timeout_ms);
  return options;
}

// The daemon's steps from a signal to the end of its VMs; `done` is set then.
void stop_on_signal(Parts& parts, asio::signal_set& signals, const DaemonConfig& config,
                    std::promise<void>& done) {
  signals.async_wait([&parts, &config, &done](const boost::system::error_code& error, int number) {
    if (error) {
      return;
    }
    log::info("hvmmd stopping", {{"signal", describe_signal(number)}});
    parts.server->set_serving(false);
    parts.listener->close();
    parts.policy->stop();
    parts.vms->shutdown(std::chrono::milliseconds(config.stop_grace_ms),
                        [&done] { done.set_value(); });
  });
}

}  // namespace

int run_daemon(const DaemonConfig& config, std::span<const uint8_t> bundled_kernel) {
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGCHLD, SIG_DFL);  // VM processes are reaped through their pidfds
  Parts parts;
  std::error_code dir_error;
  std::filesystem::create_directories(config.state_dir, dir_error);
  if (dir_error) {
    return start_failed("state-dir: cannot create '" + config.state_dir +
                        "': " + dir_error.message());
  }
  auto faults = FaultFile::open(config.fault_log);
  if (!faults) {
    return start_failed(faults.error().message);
  }
  parts.faults = std::move(*faults);
  VmManager::Options options;
  options.state_dir = config.state_dir;
  options.vm_process = config.vm_process;
  options.vmid_bits = config.vmid_bits;
  options.vm_seccomp = config.vm_seccomp;
  options.list_deadline = std::chrono::milliseconds(config.list_deadline_ms);
  options.start_timeout = std::chrono::milliseconds(config.start_timeout_ms);
  options.warm_pools = config.warm_pools;
  auto vms = VmManager::create(parts.io, options, parts.faults.get());
  if (!vms) {
    return start_failed(vms.error().message);
  }
  parts.vms = std::move(*vms);
  parts.policy = std::make_unique<HostPolicy>(parts.io, *parts.vms, policy_options(config));
  // Ready warm-pool processes hold host memory too: they count toward the VM RSS target.
  parts.policy->set_warm_pool_rss([&vms = *parts.vms] { return vms.warm_pool_rss_bytes(); });
  parts.backend = std::make_unique<Backend>(
      Backend{parts.io, *parts.vms, parts.work, bundled_kernel,
              std::chrono::milliseconds(config.request_deadline_ms), parts.policy.get()});
  auto server = GrpcServer::start(*parts.backend, config);
  if (!server) {
    return start_failed(server.error().message);
  }
  parts.server = std::move(*server);
  auto listener = UnixListener::open(parts.io, config.socket, config.socket_gid);
  if (!listener) {
    return start_failed(listener.error().message);
  }
  parts.listener = std::move(*listener);
  warn_about_vm_process(config.vm_process);

  asio::signal_set signals(parts.io, SIGTERM, SIGINT);
  std::promise<void> stopped;
  stop_on_signal(parts, signals, config, stopped);
  GrpcServer* grpc_server = parts.server.get();
  parts.listener->start([grpc_server](int fd) { grpc_server->add_connection(fd); });
  asio::post(parts.io, [&parts] { parts.policy->start(); });
  std::thread loop([&parts] { parts.io.run(); });
  parts.server->set_serving(true);
  log::info("hvmmd serving", {{"socket", config.socket},
                              {"tcp_port", parts.server->tcp_port()},
                              {"state_dir", config.state_dir},
                              {"vm_process", config.vm_process},
                              {"vmid_bits", config.vmid_bits},
                              {"pid", ::getpid()}});

  stopped.get_future().wait();
  // Off the loop's thread: gRPC's shutdown waits for RPCs that finish on the loop.
  parts.server->shutdown(kRpcGrace);
  parts.work.join();
  parts.guard.reset();
  parts.io.stop();
  loop.join();
  log::info("hvmmd stopped");
  return 0;
}

}  // namespace hvmm::daemon
