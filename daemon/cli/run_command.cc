// Running one VM in-process for `hvmm run`.
#include "hvmm/daemon/cli/run_command.h"

#include <fmt/format.h>

#include <csignal>
#include <string_view>

#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/machine/exit_status.h"
#include "hvmm/vmm/machine/machine.h"
#include "hvmm/vmm/machine/vm_stop.h"

namespace hvmm::cli {
namespace {

// Print an argument error in flag terms: status 120, nothing was created.
int bad_arguments(const RunFlags& flags, const Error& error) {
  fmt::print(stderr, "hvmm run: {}\n", translate_field_error(error.message, typed_values(flags)));
  return vmm::kExitBadArguments;
}

// Print the VMM's one end line for a setup failure: status 121.
int setup_failed(std::string_view what, const Error& error) {
  fmt::print(
      stderr, "{}",
      vmm::format_vmm_end_line(fmt::format("{}: {}", what, error.message), vmm::kExitSetupFailed));
  return vmm::kExitSetupFailed;
}

}  // namespace

// Flags, then VmOptions' checks, then KVM's own vCPU limit, then the VM.
int run_vm(const RunFlags& flags, std::span<const uint8_t> bundled_kernel) {
  auto options = to_vm_options(flags);
  if (!options) {
    return bad_arguments(flags, options.error());
  }
  auto config = daemon::make_machine_config(*options, bundled_kernel);
  if (!config) {
    return bad_arguments(flags, config.error());
  }
  auto kvm = vmm::Kvm::open();
  if (!kvm) {
    return setup_failed("KVM unavailable", kvm.error());
  }
  auto vcpus = daemon::check_vcpu_limit(config->vcpus, kvm->max_vcpus());
  if (!vcpus) {
    return bad_arguments(flags, vcpus.error());
  }
  // Guest output to a closed pipe (`hvmm run | head -1`) or a log FIFO whose reader went
  // away must not kill the VM.
  std::signal(SIGPIPE, SIG_IGN);
  auto machine = vmm::Machine::create(std::move(*config), std::move(*kvm));
  if (!machine) {
    return setup_failed("cannot create the VM", machine.error());
  }
  if (flags.report_first_run) {
    (*machine)->on_first_run([](uint64_t unix_ns) {
      fmt::print(stderr, "hvmm: first KVM_RUN at unix_ns={}\n", unix_ns);
    });
  }
  return (*machine)->run();
}

}  // namespace hvmm::cli
