// The `hvmm` CLI: option definitions (CLI11), validation and running a VM in-process.
#include "hvmm/cli/cli.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <csignal>
#include <memory>

#include "hvmm/vmm/exit_status.h"
#include "hvmm/vmm/kvm.h"
#include "hvmm/vmm/machine.h"

namespace hvmm::cli {
namespace {

constexpr const char* kExitStatusHelp =
    "Exit status: the byte the guest writes to I/O port 0xf4; otherwise 120 invalid "
    "arguments (no VM was created), 121 KVM unavailable or VM setup failed, 122 triple "
    "fault, 123 KVM internal error or failed VM entry, 124 guest shutdown/reset without "
    "writing port 0xf4, 128+N killed by signal N.";

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
                 "Append stage-2 fault records (JSON lines) to this file (default: stderr)")
      ->type_name("FILE");
  run.add_option("--console-log", options.console_log,
                 "Also write the guest's serial console output to this file")
      ->type_name("FILE");
}

// Validate, create the VM and run it; map each failure to its documented status.
int run_vm(const vmm::RunOptions& options, std::span<const uint8_t> bundled_kernel) {
  auto kvm = vmm::Kvm::open();
  unsigned max_vcpus = kvm ? kvm->max_vcpus() : vmm::kMaxVcpus;
  auto config = vmm::make_machine_config(options, bundled_kernel, max_vcpus);
  if (!config) {
    fmt::print(stderr, "hvmm run: {}\n", config.error().message);
    return vmm::kExitBadArguments;
  }
  if (!kvm) {
    fmt::print(stderr, "hvmm run: {}\n", kvm.error().message);
    return vmm::kExitSetupFailed;
  }
  // Guest output to a closed pipe (`hvmm run | head -1`) must not kill the VM.
  std::signal(SIGPIPE, SIG_IGN);
  auto machine = vmm::Machine::create(*config, std::move(*kvm));
  if (!machine) {
    fmt::print(stderr, "hvmm run: cannot create the VM: {}\n", machine.error().message);
    return vmm::kExitSetupFailed;
  }
  return (*machine)->run();
}

}  // namespace

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
  app.footer(kExitStatusHelp);
  vmm::RunOptions options;
  CLI::App* run = app.add_subcommand(
      "run", "Run one VM in this process until the guest writes its exit status to port 0xf4");
  run->footer(kExitStatusHelp);
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
