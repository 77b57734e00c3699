// The `hvmm` CLI: option definitions (CLI11), validation and running a VM in-process.
#include "hvmm/cli/cli.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <csignal>
#include <memory>
#include <string_view>

#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/machine/exit_status.h"
#include "hvmm/vmm/machine/machine.h"
#include "hvmm/vmm/machine/vm_stop.h"

namespace hvmm::cli {
namespace {

// What the log options accept (log_file.h), said once for both.
constexpr const char* kLogKinds =
    "a regular file, a FIFO with a reader, a terminal or /dev/null; a full FIFO or terminal "
    "drops (and counts) output rather than block the VM";

// Declare the balloon and control-channel options (checked in run_options.cc).
void add_device_options(CLI::App& run, vmm::RunOptions& options) {
  run.add_option("--balloon", options.balloon,
                 "Initial balloon target, with an optional K, M or G suffix (less than --memory)")
      ->type_name("SIZE");
  run.add_flag("--free-page-reporting", options.free_page_reporting,
               "Offer free page reporting: the guest's free blocks of 2 MiB and more are released");
  run.add_option("--balloon-stats-interval", options.balloon_stats_interval,
                 "Ask the guest for its memory statistics every SECONDS (0: only on request)")
      ->type_name("SECONDS")
      ->capture_default_str();
  run.add_flag("--no-balloon", options.no_balloon, "No virtio-balloon device");
  run.add_flag("--control", options.control,
               "Add the control channel (the guest kernel then waits for the host's requests)");
}

// Declare the reclaim options (checked in run_options.cc, syntax in reclaim_policy.h).
void add_reclaim_options(CLI::App& run, vmm::RunOptions& options) {
  run.add_option_function<std::string>(
         "--reclaim", [&options](const std::string& policy) { options.reclaim = policy; },
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
  run.add_option("--reclaim-swap", options.reclaim_swap,
                 "With --reclaim: a file the pool may move its coldest entries to once it is "
                 "full")
      ->type_name("FILE");
}

// Declare every `run` option on `run`, storing into `options`.
void add_run_options(CLI::App& run, vmm::RunOptions& options) {
  run.add_option("--kernel", options.kernel,
                 "PVH ELF kernel to boot (default: the bundled guest kernel)")
      ->type_name("ELF");
  run.add_option("--initrd", options.initrd, "Initial ramdisk, passed as PVH module 0")
      ->type_name("FILE");
  run.add_option("--cmdline", options.cmdline, "Kernel command line (at most 4095 bytes)")
      ->type_name("STR");
  run.add_option("--memory", options.memory,
                 "Guest RAM size, with an optional K, M or G suffix (2M to 256G)")
      ->type_name("SIZE")
      ->capture_default_str();
  run.add_option("--vcpus", options.vcpus, "Number of vCPUs (1 to KVM's limit)")
      ->type_name("N")
      ->capture_default_str();
  run.add_option("--fault-log", options.fault_log,
                 fmt::format("Append stage-2 fault records (JSON lines) here, not to stderr: {}",
                             kLogKinds))
      ->type_name("FILE");
  CLI::Option* console_log =
      run.add_option(
             "--console-log", options.console_log,
             fmt::format("Also write the guest's serial console output here: {}", kLogKinds))
          ->type_name("FILE");
  run.add_option("--console-log-max", options.console_log_max,
                 "Cap of --console-log, with an optional K, M or G suffix (0: no cap); output "
                 "past it is dropped and counted (stdout is never capped)")
      ->type_name("SIZE")
      ->capture_default_str()
      ->needs(console_log);
  add_device_options(run, options);
  run.add_option("--fault-around", options.fault_around,
                 "Largest fault-around window of the userfaultfd handler: a power of two from 4K "
                 "to 2M (0: one page per fault)")
      ->type_name("MAX")
      ->capture_default_str();
  run.add_option("--userfaultfd", options.userfaultfd,
                 "on: first touches and refaults of guest RAM are resolved by hvmm from page "
                 "state; off: the host kernel fills them (the benchmark reference)")
      ->type_name("on|off")
      ->capture_default_str();
  run.add_option("--stats", options.stats,
                 fmt::format("Write the VM's memory figures as one JSON object here at exit (a "
                             "regular file is truncated): {}",
                             kLogKinds))
      ->type_name("FILE");
  add_reclaim_options(run, options);
}

// Print an argument error: status 120, nothing was created.
int bad_arguments(const Error& error) {
  fmt::print(stderr, "hvmm run: {}\n", error.message);
  return vmm::kExitBadArguments;
}

// Print the VMM's one end line for a setup failure: status 121.
int setup_failed(std::string_view what, const Error& error) {
  fmt::print(
      stderr, "{}",
      vmm::format_vmm_end_line(fmt::format("{}: {}", what, error.message), vmm::kExitSetupFailed));
  return vmm::kExitSetupFailed;
}

// Validate (files read, logs opened) before /dev/kvm is opened, then create the VM and run
// it; map each failure to its documented status.
int run_vm(const vmm::RunOptions& options, std::span<const uint8_t> bundled_kernel) {
  auto config = vmm::make_machine_config(options, bundled_kernel);
  if (!config) {
    return bad_arguments(config.error());
  }
  auto kvm = vmm::Kvm::open();
  if (!kvm) {
    return setup_failed("KVM unavailable", kvm.error());
  }
  auto vcpus = vmm::check_vcpu_limit(config->vcpus, kvm->max_vcpus());
  if (!vcpus) {
    return bad_arguments(vcpus.error());
  }
  // Guest output to a closed pipe (`hvmm run | head -1`) or a log FIFO whose reader went
  // away must not kill the VM.
  std::signal(SIGPIPE, SIG_IGN);
  auto machine = vmm::Machine::create(std::move(*config), std::move(*kvm));
  if (!machine) {
    return setup_failed("cannot create the VM", machine.error());
  }
  return (*machine)->run();
}

}  // namespace

// The version CMake's project() declares (daemon/CMakeLists.txt passes it in).
const char* version() {
  return HVMM_VERSION;
}

// Parse only the `run` options (no program name, no subcommand word).
Result<vmm::RunOptions> parse_run_arguments(const std::vector<std::string>& args) {
  vmm::RunOptions options;
  CLI::App run{"run"};
  add_run_options(run, options);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    run.parse(reversed);
  } catch (const CLI::ParseError& error) {
    return make_error(ErrorCode::kInvalidArgument, "{}", error.what());
  }
  return options;
}

// The top-level app with its subcommands.
int run_cli(int argc, char** argv, std::span<const uint8_t> bundled_kernel) {
  CLI::App app{"hvmm: a KVM-based virtual machine monitor specialised in guest memory"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("hvmm ") + version());
  const std::string exit_status_help = vmm::exit_status_help();
  app.footer(exit_status_help);
  vmm::RunOptions options;
  CLI::App* run = app.add_subcommand(
      "run", "Run one VM in this process until the guest writes its exit status to port 0xf4");
  run->footer(exit_status_help);
  add_run_options(*run, options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int status = app.exit(error);
    return status == 0 ? 0 : vmm::kExitBadArguments;
  }
  return run_vm(options, bundled_kernel);
}

}  // namespace hvmm::cli
