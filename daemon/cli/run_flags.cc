// `hvmm run`'s flags: their CLI11 declarations and their conversion into VmOptions.
#include "hvmm/daemon/cli/run_flags.h"

#include <fmt/format.h>

#include <charconv>

#include "hvmm/daemon/args/size.h"

namespace hvmm::cli {
namespace {

// What the log flags accept (vmm/host/log_file.h), said once for all three.
constexpr const char* kLogKinds =
    "a regular file, a FIFO with a reader, a terminal or /dev/null; a full FIFO or terminal "
    "drops (and counts) output rather than block the VM";

// The balloon and control-channel flags.
void add_device_flags(CLI::App& run, RunFlags& flags) {
  run.add_option("--balloon", flags.balloon,
                 "Initial balloon target, with an optional K, M or G suffix (less than --memory)")
      ->type_name("SIZE");
  run.add_flag("--free-page-reporting", flags.free_page_reporting,
               "Offer free page reporting: the guest's free blocks of 2 MiB and more are released");
  run.add_option("--balloon-stats-interval", flags.balloon_stats_interval,
                 "Ask the guest for its memory statistics every SECONDS (0: only on request)")
      ->type_name("SECONDS")
      ->capture_default_str();
  run.add_flag("--no-balloon", flags.no_balloon, "No virtio-balloon device");
  run.add_flag("--control", flags.control,
               "Add the control channel (the guest kernel then waits for the host's requests)");
  run.add_flag("--report-first-run", flags.report_first_run)->group("");
}

// The reclaim and dirty-tracking flags (policy syntax in vmm/reclaim/reclaim_policy.h).
void add_reclaim_flags(CLI::App& run, RunFlags& flags) {
  run.add_option_function<std::string>(
         "--reclaim", [&flags](const std::string& policy) { flags.reclaim = policy; },
         "Take cold pages back without the guest's help, into a compressed pool "
         "(needs --userfaultfd on). POLICY is comma-separated key=value pairs, each "
         "optional (\"\" is the default policy): target=SIZE|N% (RSS goal; default: "
         "every cold page), period=1s (epoch, ms or s), cold=120 (epochs unwritten), "
         "refault=N (refault distance, default cold), active=N (epochs a refaulted "
         "page is exempt, default 4*cold), budget=0.2% (refaults per minute of the "
         "working set before backing off), rate=64M (bytes per second), codec=lz4|zstd, "
         "pool=SIZE (default a quarter of RAM), keep=75% (largest payload kept, of a "
         "page), dirty=log|ring. Example: target=64M,period=1s,cold=3")
      ->type_name("POLICY");
  run.add_option("--reclaim-swap", flags.reclaim_swap,
                 "With --reclaim: a file the pool may move its coldest entries to once it is "
                 "full")
      ->type_name("FILE");
  run.add_option("--dirty-tracking", flags.dirty_tracking,
                 "Turn on KVM dirty tracking: log (the dirty bitmap) or ring (dirty rings); "
                 "with --reclaim, its policy's dirty= follows (naming the other kind is an "
                 "error)")
      ->type_name("log|ring");
}

// The files, logs and sizes.
void add_machine_flags(CLI::App& run, RunFlags& flags) {
  run.add_option("--kernel", flags.kernel,
                 "PVH ELF kernel to boot (default: the bundled guest kernel)")
      ->type_name("ELF");
  run.add_option("--initrd", flags.initrd, "Initial ramdisk, passed as PVH module 0")
      ->type_name("FILE");
  run.add_option("--cmdline", flags.cmdline, "Kernel command line (at most 4095 bytes)")
      ->type_name("STR");
  run.add_option("--memory", flags.memory,
                 "Guest RAM size, with an optional K, M or G suffix (2M to 256G)")
      ->type_name("SIZE")
      ->capture_default_str();
  run.add_option("--vcpus", flags.vcpus, "Number of vCPUs (1 to KVM's limit)")
      ->type_name("N")
      ->capture_default_str();
  run.add_option("--fault-log", flags.fault_log,
                 fmt::format("Append stage-2 fault records (JSON lines) here, not to stderr: {}",
                             kLogKinds))
      ->type_name("FILE");
  CLI::Option* console_log =
      run.add_option(
             "--console-log", flags.console_log,
             fmt::format("Also write the guest's serial console output here: {}", kLogKinds))
          ->type_name("FILE");
  run.add_option("--console-log-max", flags.console_log_max,
                 "Cap of --console-log, with an optional K, M or G suffix (0: no cap); output "
                 "past it is dropped and counted (stdout is never capped)")
      ->type_name("SIZE")
      ->capture_default_str()
      ->needs(console_log);
}

// The fault-handling flags and --stats.
void add_fault_flags(CLI::App& run, RunFlags& flags) {
  run.add_option("--fault-around", flags.fault_around,
                 "Largest fault-around window of the userfaultfd handler: a power of two from 4K "
                 "to 2M (0: one page per fault)")
      ->type_name("MAX")
      ->capture_default_str();
  run.add_option("--userfaultfd", flags.userfaultfd,
                 "on: first touches and refaults of guest RAM are resolved by hvmm from page "
                 "state; off: the host kernel fills them (the benchmark reference)")
      ->type_name("on|off")
      ->capture_default_str();
  run.add_option("--stats", flags.stats,
                 fmt::format("Write the VM's memory figures as one JSON object here at exit (a "
                             "regular file is truncated): {}",
                             kLogKinds))
      ->type_name("FILE");
}

// A size flag's text in bytes; the error names the flag.
Result<uint64_t> size_flag(std::string_view flag, const std::string& text) {
  auto size = args::parse_size(text);
  if (!size) {
    return make_error(ErrorCode::kInvalidArgument, "{}: {}", flag, size.error().message);
  }
  return *size;
}

// --balloon-stats-interval: whole seconds (VmOptions bounds them).
Result<unsigned> seconds_flag(const std::string& text) {
  unsigned seconds = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--balloon-stats-interval '{}': expected whole seconds (0: only on request)",
                      text);
  }
  return seconds;
}

// --userfaultfd: on or off.
Result<bool> on_off_flag(const std::string& text) {
  if (text == "on" || text == "off") {
    return text == "on";
  }
  return make_error(ErrorCode::kInvalidArgument, "--userfaultfd {}: must be on or off", text);
}

// --dirty-tracking: log, ring, or nothing.
Result<std::optional<vmm::DirtyTracking>> dirty_flag(const std::string& text) {
  if (text.empty()) {
    return std::optional<vmm::DirtyTracking>();
  }
  auto tracking = vmm::parse_dirty_tracking(text);
  if (!tracking) {
    return make_error(ErrorCode::kInvalidArgument, "--dirty-tracking {}: must be log or ring",
                      text);
  }
  return std::optional<vmm::DirtyTracking>(*tracking);
}

// The flags that are sizes, in the order they are checked.
Result<void> convert_sizes(const RunFlags& flags, daemon::VmOptions& options) {
  auto memory = size_flag("--memory", flags.memory);
  HVMM_TRY(memory);
  options.memory_bytes = *memory;
  if (!flags.balloon.empty()) {
    auto target = size_flag("--balloon", flags.balloon);
    HVMM_TRY(target);
    options.balloon_target_bytes = *target;
  }
  auto log_max = size_flag("--console-log-max", flags.console_log_max);
  HVMM_TRY(log_max);
  options.console_log_max_bytes = *log_max;
  auto fault_around = size_flag("--fault-around", flags.fault_around);
  HVMM_TRY(fault_around);
  options.fault_around_bytes = *fault_around;
  return Ok();
}

}  // namespace

void add_run_flags(CLI::App& run, RunFlags& flags) {
  add_machine_flags(run, flags);
  add_device_flags(run, flags);
  add_fault_flags(run, flags);
  add_reclaim_flags(run, flags);
}

// Texts first (each error names its flag), then the fields that need no parsing.
Result<daemon::VmOptions> to_vm_options(const RunFlags& flags) {
  daemon::VmOptions options;
  HVMM_TRY(convert_sizes(flags, options));
  auto interval = seconds_flag(flags.balloon_stats_interval);
  HVMM_TRY(interval);
  options.balloon_stats_interval_seconds = *interval;
  auto userfaultfd = on_off_flag(flags.userfaultfd);
  HVMM_TRY(userfaultfd);
  options.userfaultfd = *userfaultfd;
  auto dirty = dirty_flag(flags.dirty_tracking);
  HVMM_TRY(dirty);
  options.dirty_tracking = *dirty;
  options.kernel = flags.kernel;
  options.initrd = flags.initrd;
  options.cmdline = flags.cmdline;
  options.vcpus = flags.vcpus;
  options.fault_log = flags.fault_log;
  options.console_log = flags.console_log;
  options.balloon = !flags.no_balloon;
  options.free_page_reporting = flags.free_page_reporting;
  options.control_channel = flags.control;
  options.stats_file = flags.stats;
  options.reclaim_policy = flags.reclaim;
  options.reclaim_swap = flags.reclaim_swap;
  return options;
}

TypedValues typed_values(const RunFlags& flags) {
  return {
      {"--memory", flags.memory},
      {"--vcpus", std::to_string(flags.vcpus)},
      {"--console-log-max", flags.console_log_max},
      {"--balloon", flags.balloon},
      {"--balloon-stats-interval", flags.balloon_stats_interval},
      {"--fault-around", flags.fault_around},
      {"--userfaultfd", flags.userfaultfd},
      {"--reclaim-swap", flags.reclaim_swap},
      {"--dirty-tracking", flags.dirty_tracking},
  };
}

}  // namespace hvmm::cli
