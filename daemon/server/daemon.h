// The hvmmd process: the event loop, the VMs, the gRPC server and the socket, from start to
// SIGTERM.
//
// Threads: the event loop (Boost.Asio: signals, timers, VM processes' channels, pidfds and
// output pipes, the socket's accepts) runs on one thread; gRPC runs its own; a small worker
// pool checks Create's specs. SIGTERM or SIGINT: health NOT_SERVING, the socket is removed,
// every VM is stopped (Shutdown, then SIGKILL after stop-grace-ms), streams end, the gRPC
// server stops, and the process exits 0.
#pragma once

#include <cstdint>
#include <span>

#include "hvmm/daemon/server/config.h"

namespace hvmm::daemon {

// Exit statuses of hvmmd besides 0: bad flags or configuration (the same 120 as `hvmm run`),
// and a daemon that could not start (socket in use, state directory unusable...).
inline constexpr int kDaemonStartFailed = 1;

// Run the daemon until SIGTERM or SIGINT; returns the exit status.
int run_daemon(const DaemonConfig& config, std::span<const uint8_t> bundled_kernel);

}  // namespace hvmm::daemon
