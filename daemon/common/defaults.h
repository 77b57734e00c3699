// Where hvmmd and its clients meet by default. One place, so the daemon, the CLI and the
// deployment files cannot disagree.
#pragma once

namespace hvmm::daemon {

// The daemon's unix socket (mode 0660; root or the socket's group may connect).
inline constexpr const char* kDefaultSocket = "/run/hvmm/hvmmd.sock";
// The daemon's configuration file, read when it exists.
inline constexpr const char* kDefaultConfig = "/etc/hvmm/hvmmd.conf";

}  // namespace hvmm::daemon
