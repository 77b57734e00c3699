// DaemonConfig: what hvmmd runs with, from its flags and its configuration file.
//
// Every setting is a flag (`--socket PATH`) and a key of the configuration file
// (`socket = "PATH"`, CLI11's TOML-like format; deploy/hvmmd.conf.example documents each key).
// Flags win over the file. The file is kDefaultConfig when it exists, or the one --config
// names (which must exist). Anything wrong (an unknown key, a value out of range, TCP without
// TLS, a group that does not exist) is an error that names the key; hvmmd exits with
// kExitBadArguments (120) and that message, before it touches the socket or any VM.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hvmm/base/result.h"
#include "hvmm/daemon/server/warm_pool_sizes.h"

namespace hvmm::daemon {

enum class LogFormat { kText, kJson };

struct DaemonConfig {
  std::string socket;               // the unix socket gRPC is served on (mode 0660)
  std::optional<gid_t> socket_gid;  // its group; none: the daemon's own group
  std::string socket_group;         // as configured (for messages)
  std::string state_dir;            // per-VM directories (console logs) and the fault log
  std::string fault_log;   // the daemon's fault log (JSON lines); "" = state_dir/faults.jsonl
  std::string vm_process;  // the VM process executable (hvmm-vm)
  unsigned vmid_bits = 8;
  std::string tcp_listen;  // "host:port"; empty: no TCP
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;              // client certificates are required and checked against it
  bool insecure_tcp = false;       // TCP without TLS (tests only)
  bool vm_seccomp = true;          // VM processes install their seccomp filter (Launch.seccomp)
  std::string log_level = "info";  // trace, debug, info, warn, error, critical, off
  std::string log_format_name = "text";  // as configured
  LogFormat log_format = LogFormat::kText;
  uint32_t stop_grace_ms = 10000;        // SIGTERM: how long VMs get to shut down
  uint32_t request_deadline_ms = 30000;  // the longest a VM process is waited for
  uint32_t list_deadline_ms = 250;       // List/Get: how long memory figures are waited for
  uint32_t start_timeout_ms = 120000;    // a VM process that has not said Started is killed
  std::string config_file;               // the file read, or "" when none

  // The host memory policy (policy.proto's HostPolicy; hvmm.v1 SetHostPolicy replaces it).
  bool policy_enabled = false;
  bool policy_dry_run = false;
  std::string policy_min_available = "0";  // sizes as typed ("512M"); parsed below
  std::string policy_max_vm_rss = "0";
  std::string policy_step = "64M";
  uint64_t policy_min_available_bytes = 0;
  uint64_t policy_max_vm_rss_bytes = 0;
  uint64_t policy_step_bytes = uint64_t{64} << 20;
  double policy_max_pressure = 0;  // percent, the "some" avg10
  uint32_t policy_interval_ms = 1000;
  double policy_hysteresis = 0.1;
  uint32_t policy_hold_rounds = 5;
  uint32_t policy_balloon_timeout_ms = 5000;
  std::string host_meminfo = "/proc/meminfo";  // what the policy samples (tests feed files)
  std::string host_pressure = "/proc/pressure/memory";
  std::string warm_pool;                 // `warm-pool` as configured ("256M:2,1G:1")
  std::vector<WarmPoolSize> warm_pools;  // ... parsed (warm_pool_sizes.h)
};

// The outcome of parsing: a config to run with, or an exit status with what to print.
struct ConfigOutcome {
  std::optional<DaemonConfig> config;
  int exit_status = 0;  // when no config: 0 for --help/--version, 120 for errors
  std::string message;  // printed to stdout (help) or stderr (errors)
};

// Parse argv (and the configuration file) into a DaemonConfig. `self_exe` is the daemon's
// own path (/proc/self/exe), next to which the VM process is looked for by default.
ConfigOutcome parse_daemon_config(int argc, const char* const* argv, const std::string& self_exe);

// Check what flags alone cannot (TLS pairs, the group, the paths) and fill the derived
// fields; errors name the key.
Result<void> finish_daemon_config(DaemonConfig& config);

}  // namespace hvmm::daemon
