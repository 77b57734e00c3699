// The flags of `hvmm run`, as typed, and their conversion into VmOptions.
//
// CLI11 stores each flag's text here (add_run_flags); to_vm_options() parses the texts
// (sizes with K/M/G suffixes, whole seconds, on|off, log|ring) with errors that name the
// flag, as `hvmm run` has always printed them ("--memory: '12X' has an unknown size suffix
// 'X'"). What a value means (ranges, files, contradictions) is VmOptions' to check
// (daemon/options/vm_options.h), and its errors are put back in flag terms with
// flag_names.h, using the texts kept here (typed_values()).
#pragma once

#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "hvmm/base/result.h"
#include "hvmm/daemon/cli/flag_names.h"
#include "hvmm/daemon/options/vm_options.h"

namespace hvmm::cli {

// RunFlags holds `hvmm run`'s flags as typed; the defaults are the texts of VmOptions'.
struct RunFlags {
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  std::string memory = "128M";
  unsigned vcpus = 1;
  std::string fault_log;
  std::string console_log;
  std::string console_log_max = "64M";  // 0: no cap
  std::string balloon;                  // empty: target 0
  bool free_page_reporting = false;
  std::string balloon_stats_interval = "0";
  bool no_balloon = false;
  bool control = false;
  std::string fault_around = "2M";
  std::string userfaultfd = "on";
  std::string stats;
  std::optional<std::string> reclaim;  // absent: no reclaim; "": the default policy
  std::string reclaim_swap;
  std::string dirty_tracking;  // empty: only what --reclaim's policy asks for
  // Hidden (benchmarks): print "hvmm: first KVM_RUN at unix_ns=N" on stderr when the boot
  // vCPU first enters the guest (CLOCK_REALTIME).
  bool report_first_run = false;
};

// Declare every `run` flag on `run`, storing into `flags`.
void add_run_flags(CLI::App& run, RunFlags& flags);

// Parse the texts into VmOptions; errors name the flag (status 120).
Result<daemon::VmOptions> to_vm_options(const RunFlags& flags);

// What the user typed for the flags whose errors quote it, by flag.
TypedValues typed_values(const RunFlags& flags);

}  // namespace hvmm::cli
