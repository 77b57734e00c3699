// Flags and configuration file of hvmmd (config.h).
#include "hvmm/daemon/server/config.h"

#include <grp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "hvmm/daemon/args/size.h"
#include "hvmm/daemon/common/defaults.h"
#include "hvmm/vmm/machine/exit_status.h"

namespace hvmm::daemon {
namespace {

constexpr const char* kLogLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};

// The directory of `path` ("" for a bare name).
std::string directory_of(const std::string& path) {
  return std::filesystem::path(path).parent_path().string();
}

void add_options(CLI::App& app, DaemonConfig& config) {
  app.add_option("--socket", config.socket, "Unix socket the API is served on (mode 0660)")
      ->capture_default_str();
  app.add_option("--socket-group", config.socket_group,
                 "Group of the socket: its members may use the API (default: the daemon's group)");
  app.add_option("--state-dir", config.state_dir,
                 "Directory of per-VM state (console logs) and the fault log")
      ->capture_default_str();
  app.add_option("--fault-log", config.fault_log,
                 "Fault records of every VM as JSON lines (default: STATE_DIR/faults.jsonl)");
  app.add_option("--vm-process", config.vm_process,
                 "The VM process executable (default: hvmm-vm next to hvmmd)");
  app.add_option("--vmid-bits", config.vmid_bits, "Stage-2 VMID width (2..16)")
      ->capture_default_str()
      ->check(CLI::Range(2, 16));
  app.add_option("--listen-tcp", config.tcp_listen,
                 "Also serve on TCP at HOST:PORT (needs --tls-cert and --tls-key)");
  app.add_option("--tls-cert", config.tls_cert, "TLS certificate chain (PEM) for --listen-tcp");
  app.add_option("--tls-key", config.tls_key, "TLS private key (PEM) for --listen-tcp");
  app.add_option("--tls-ca", config.tls_ca,
                 "CA certificates (PEM): TCP clients must present a certificate it signed");
  app.add_flag("--insecure-tcp", config.insecure_tcp,
               "Serve --listen-tcp without TLS (for tests: anyone who can connect is trusted)");
  app.add_option("--vm-seccomp", config.vm_seccomp,
                 "VM processes run under their seccomp filter (false only to trace them)")
      ->capture_default_str();
  app.add_option("--log-level", config.log_level, "trace, debug, info, warn, error, critical, off")
      ->capture_default_str()
      ->check(
          CLI::IsMember(std::vector<std::string>(std::begin(kLogLevels), std::end(kLogLevels))));
  app.add_option("--log-format", config.log_format_name, "text, or json (one JSON object a line)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--stop-grace-ms", config.stop_grace_ms,
                 "On SIGTERM, how long VMs get to shut down before they are killed")
      ->capture_default_str()
      ->check(CLI::Range(0u, 600000u));
  app.add_option("--request-deadline-ms", config.request_deadline_ms,
                 "The longest a request waits for its VM process (clients may ask for less)")
      ->capture_default_str()
      ->check(CLI::Range(100u, 3600000u));
  app.add_option("--start-timeout-ms", config.start_timeout_ms,
                 "How long a VM process may take to build its VM before it is killed")
      ->capture_default_str()
      ->check(CLI::Range(100u, 3600000u));
  app.add_option("--list-deadline-ms", config.list_deadline_ms,
                 "How long List and Get wait for a VM's memory figures")
      ->capture_default_str()
      ->check(CLI::Range(1u, 10000u));
  app.add_option("--warm-pool", config.warm_pool,
                 "Pre-built VM processes to keep ready, SIZE[/VCPUS]:COUNT,... (e.g. "
                 "256M:2,1G:1): a Start of that size and vCPU count takes one (warm start)");
}

void add_policy_options(CLI::App& app, DaemonConfig& config) {
  app.add_option("--policy-enabled", config.policy_enabled,
                 "The host memory policy acts on its targets (off: it only samples)")
      ->capture_default_str();
  app.add_option("--policy-dry-run", config.policy_dry_run,
                 "The host memory policy only logs and reports its decisions")
      ->capture_default_str();
  app.add_option("--policy-min-available", config.policy_min_available,
                 "Take memory from VMs while MemAvailable is below this (64M, 2G; 0: no target)")
      ->capture_default_str();
  app.add_option("--policy-max-vm-rss", config.policy_max_vm_rss,
                 "Take memory from VMs while their processes' RSS is above this (0: no target)")
      ->capture_default_str();
  app.add_option("--policy-max-pressure", config.policy_max_pressure,
                 "Take memory while the memory pressure (PSI some avg10, %) is above this")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--policy-interval-ms", config.policy_interval_ms,
                 "How often the host is sampled and one round of decisions made")
      ->capture_default_str()
      ->check(CLI::Range(100u, 3600000u));
  app.add_option("--policy-step", config.policy_step,
                 "The most one decision takes from or gives to one VM (a size)")
      ->capture_default_str();
  app.add_option("--policy-hysteresis", config.policy_hysteresis,
                 "Give back only once every target is met with this margin (0..1)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--policy-hold-rounds", config.policy_hold_rounds,
                 "After a round that took memory, give nothing back for this many rounds")
      ->capture_default_str()
      ->check(CLI::Range(0u, 100000u));
  app.add_option("--policy-balloon-timeout-ms", config.policy_balloon_timeout_ms,
                 "A balloon that has not moved half its inflation in this long does not cooperate")
      ->capture_default_str()
      ->check(CLI::Range(100u, 3600000u));
  app.add_option("--host-meminfo", config.host_meminfo, "What the policy reads as /proc/meminfo")
      ->capture_default_str();
  app.add_option("--host-pressure", config.host_pressure,
                 "What the policy reads as /proc/pressure/memory")
      ->capture_default_str();
}

Result<uint64_t> policy_size(const char* key, const std::string& text, uint64_t minimum) {
  auto bytes = args::parse_size(text);
  if (!bytes) {
    return make_error(ErrorCode::kInvalidArgument, "{}: {}", key, bytes.error().message);
  }
  if (*bytes != 0 && *bytes < minimum) {
    return make_error(ErrorCode::kInvalidArgument, "{}: '{}' is below {} bytes", key, text,
                      minimum);
  }
  return *bytes;
}

Result<void> finish_policy(DaemonConfig& config) {
  auto min_available = policy_size("policy-min-available", config.policy_min_available, 0);
  HVMM_TRY(min_available);
  config.policy_min_available_bytes = *min_available;
  auto max_rss = policy_size("policy-max-vm-rss", config.policy_max_vm_rss, 0);
  HVMM_TRY(max_rss);
  config.policy_max_vm_rss_bytes = *max_rss;
  auto step = policy_size("policy-step", config.policy_step, 4096);
  HVMM_TRY(step);
  config.policy_step_bytes = *step;
  // CLI11's ranges let NaN through (every comparison with it is false).
  if (std::isnan(config.policy_max_pressure)) {
    return make_error(ErrorCode::kInvalidArgument, "policy-max-pressure: NaN is not a percentage");
  }
  if (std::isnan(config.policy_hysteresis)) {
    return make_error(ErrorCode::kInvalidArgument, "policy-hysteresis: NaN is not in 0..1");
  }
  if (config.host_meminfo.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "host-meminfo: must not be empty");
  }
  if (config.host_pressure.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "host-pressure: must not be empty");
  }
  return Ok();
}

// CLI11 words its configuration-file errors for INI files; say which key and which file.
std::string describe_parse_error(const CLI::ParseError& error, const std::string& file) {
  std::string message = error.what();
  const std::string extras = "INI was not able to parse ";
  if (message.rfind(extras, 0) == 0) {
    return fmt::format("{}: unknown key '{}'", file, message.substr(extras.size()));
  }
  return message;
}

Result<void> check_readable(const char* key, const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) {
    return make_error(ErrorCode::kInvalidArgument, "{}: cannot read '{}': {}", key, path,
                      std::strerror(errno));
  }
  return Ok();
}

Result<void> finish_tcp(DaemonConfig& config) {
  if (config.tcp_listen.empty()) {
    if (!config.tls_cert.empty() || !config.tls_key.empty() || !config.tls_ca.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "tls-cert: TLS files are given but listen-tcp is not");
    }
    if (config.insecure_tcp) {
      return make_error(ErrorCode::kInvalidArgument, "insecure-tcp: listen-tcp is not set");
    }
    return Ok();
  }
  if (config.tcp_listen.find(':') == std::string::npos) {
    return make_error(ErrorCode::kInvalidArgument, "listen-tcp: '{}' is not HOST:PORT",
                      config.tcp_listen);
  }
  if (config.insecure_tcp) {
    if (!config.tls_cert.empty() || !config.tls_key.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "insecure-tcp: cannot be combined with tls-cert/tls-key");
    }
    return Ok();
  }
  if (config.tls_cert.empty() || config.tls_key.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "listen-tcp: TCP needs TLS: set tls-cert and tls-key (or insecure-tcp for "
                      "tests)");
  }
  HVMM_TRY(check_readable("tls-cert", config.tls_cert));
  HVMM_TRY(check_readable("tls-key", config.tls_key));
  if (!config.tls_ca.empty()) {
    HVMM_TRY(check_readable("tls-ca", config.tls_ca));
  }
  return Ok();
}

Result<void> finish_group(DaemonConfig& config) {
  if (config.socket_group.empty()) {
    return Ok();
  }
  if (const group* entry = ::getgrnam(config.socket_group.c_str())) {
    config.socket_gid = entry->gr_gid;
    return Ok();
  }
  char* end = nullptr;
  errno = 0;
  unsigned long gid = std::strtoul(config.socket_group.c_str(), &end, 10);
  if (errno == 0 && end != config.socket_group.c_str() && *end == '\0' && gid < 0xffffffffu) {
    config.socket_gid = static_cast<gid_t>(gid);
    return Ok();
  }
  return make_error(ErrorCode::kInvalidArgument, "socket-group: no group named '{}'",
                    config.socket_group);
}

}  // namespace

Result<void> finish_daemon_config(DaemonConfig& config) {
  if (config.log_format_name != "text" && config.log_format_name != "json") {
    return make_error(ErrorCode::kInvalidArgument, "log-format: '{}' is neither text nor json",
                      config.log_format_name);
  }
  config.log_format = config.log_format_name == "json" ? LogFormat::kJson : LogFormat::kText;
  if (config.socket.empty() || config.socket.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "socket: '{}' must be a path of 1..{} bytes (a unix socket's limit)",
                      config.socket, sizeof(sockaddr_un{}.sun_path) - 1);
  }
  if (config.state_dir.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "state-dir: must not be empty");
  }
  if (config.fault_log.empty()) {
    config.fault_log = config.state_dir + "/faults.jsonl";
  }
  if (config.vm_process.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "vm-process: must not be empty");
  }
  HVMM_TRY(finish_group(config));
  HVMM_TRY(finish_policy(config));
  auto pools = parse_warm_pool_sizes(config.warm_pool);
  HVMM_TRY(pools);
  config.warm_pools = std::move(*pools);
  return finish_tcp(config);
}

ConfigOutcome parse_daemon_config(int argc, const char* const* argv, const std::string& self_exe) {
  DaemonConfig config;
  config.socket = kDefaultSocket;
  config.state_dir = "/var/lib/hvmm";
  config.vm_process = (std::filesystem::path(directory_of(self_exe)) / "hvmm-vm").string();

  CLI::App app{"hvmmd: the hvmm daemon (runs VMs, serves hvmm.v1 over gRPC)"};
  app.set_version_flag("--version", std::string("hvmmd ") + HVMM_VERSION);
  app.allow_config_extras(CLI::config_extras_mode::error);
  CLI::Option* config_option = app.set_config(
      "--config", "",
      "Configuration file (default: " + std::string(kDefaultConfig) + " when it exists)");
  add_options(app, config);
  add_policy_options(app, config);
  // The default file is read only when it exists; one named with --config must exist.
  struct stat info {};
  bool default_exists = ::stat(kDefaultConfig, &info) == 0;
  if (default_exists) {
    config_option->default_str(kDefaultConfig);
  }
  ConfigOutcome outcome;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    outcome.message = app.help();
    return outcome;
  } catch (const CLI::CallForVersion&) {
    outcome.message = std::string("hvmmd ") + HVMM_VERSION + "\n";
    return outcome;
  } catch (const CLI::ParseError& error) {
    std::string file =
        config_option->count() > 0 ? config_option->as<std::string>() : std::string(kDefaultConfig);
    outcome.exit_status = vmm::kExitBadArguments;
    outcome.message = "hvmmd: " + describe_parse_error(error, file) + "\n";
    return outcome;
  }
  if (config_option->count() > 0) {
    config.config_file = config_option->as<std::string>();
  } else if (default_exists) {
    config.config_file = kDefaultConfig;
  }
  auto finished = finish_daemon_config(config);
  if (!finished) {
    outcome.exit_status = vmm::kExitBadArguments;
    outcome.message = "hvmmd: " + finished.error().message + "\n";
    return outcome;
  }
  outcome.config = std::move(config);
  return outcome;
}

}  // namespace hvmm::daemon
