// Building the VM a Launch describes (launch.h).
#include "hvmm/daemon/vmproc/launch.h"

#include "hvmm/daemon/options/vm_options.h"
#include "hvmm/daemon/spec/vm_spec.h"
#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/machine/exit_status.h"

namespace hvmm::daemon::vmproc {
namespace {

// VMIDs are 16 bits at most (stage2/vmid_allocator.h); 0 is reserved.
constexpr uint32_t kMaxVmid = 0xffff;

LaunchFailure failure(const Error& error, int exit_status, std::string_view what = {}) {
  return LaunchFailure{rpc_code(error.code),
                       what.empty() ? error.message : fmt::format("{}: {}", what, error.message),
                       exit_status};
}

}  // namespace

Result<vmm::MachineConfig> machine_config_from_launch(const hvmm::supervisor::v1::Launch& launch,
                                                      std::span<const uint8_t> bundled_kernel) {
  if (launch.vmid() == 0 || launch.vmid() > kMaxVmid) {
    return make_error(ErrorCode::kInvalidArgument, "vmid: must be 1..{} (got {})", kMaxVmid,
                      launch.vmid());
  }
  auto options = options_from_spec(launch.name(), launch.spec());
  HVMM_TRY(options);
  options->console_log = launch.console_log();
  options->fault_log = launch.fault_log().empty() ? "/dev/null" : launch.fault_log();
  auto config = make_machine_config(*options, bundled_kernel);
  HVMM_TRY(config);
  config->name = launch.name();
  config->vmid = launch.vmid();
  config->console_input = false;  // stdin is not the daemon's to give
  return config;
}

BuiltMachine build_machine(const hvmm::supervisor::v1::Launch& launch,
                           std::span<const uint8_t> bundled_kernel) {
  auto config = machine_config_from_launch(launch, bundled_kernel);
  if (!config) {
    return {nullptr, failure(config.error(), vmm::kExitBadArguments)};
  }
  auto kvm = vmm::Kvm::open();
  if (!kvm) {
    return {nullptr, failure(kvm.error(), vmm::kExitSetupFailed, "KVM unavailable")};
  }
  if (auto vcpus = check_vcpu_limit(config->vcpus, kvm->max_vcpus()); !vcpus) {
    return {nullptr, failure(vcpus.error(), vmm::kExitBadArguments)};
  }
  auto machine = vmm::Machine::create(std::move(*config), std::move(*kvm));
  if (!machine) {
    return {nullptr, failure(machine.error(), vmm::kExitSetupFailed, "cannot create the VM")};
  }
  return {std::move(*machine), std::nullopt};
}

BuiltMachine prepare_machine(const hvmm::supervisor::v1::Prepare& prepare) {
  VmOptions options;
  options.memory_bytes = prepare.memory_bytes();
  options.vcpus = prepare.vcpus();
  if (auto checked = check_machine_shape(options); !checked) {
    return {nullptr, failure(checked.error(), vmm::kExitBadArguments, "prepare")};
  }
  auto kvm = vmm::Kvm::open();
  if (!kvm) {
    return {nullptr, failure(kvm.error(), vmm::kExitSetupFailed, "KVM unavailable")};
  }
  if (auto vcpus = check_vcpu_limit(options.vcpus, kvm->max_vcpus()); !vcpus) {
    return {nullptr, failure(vcpus.error(), vmm::kExitBadArguments, "prepare")};
  }
  auto machine = vmm::Machine::prepare(vmm::PrepareConfig{options.memory_bytes, options.vcpus},
                                       std::move(*kvm));
  if (!machine) {
    return {nullptr, failure(machine.error(), vmm::kExitSetupFailed, "cannot prepare the VM")};
  }
  return {std::move(*machine), std::nullopt};
}

std::optional<LaunchFailure> launch_prepared(const hvmm::supervisor::v1::Launch& launch,
                                             std::span<const uint8_t> bundled_kernel,
                                             vmm::Machine& machine) {
  auto config = machine_config_from_launch(launch, bundled_kernel);
  if (!config) {
    return failure(config.error(), vmm::kExitBadArguments);
  }
  if (auto launched = machine.launch(std::move(*config)); !launched) {
    // A spec that does not match what was prepared is the caller's mistake, found before
    // anything changed; anything else failed while building.
    const bool mismatch = machine.prepared_only();
    return failure(launched.error(), mismatch ? vmm::kExitBadArguments : vmm::kExitSetupFailed,
                   mismatch ? "spec does not match the prepared VM" : "cannot create the VM");
  }
  return std::nullopt;
}

hvmm::supervisor::v1::ToDaemon failed_event(const LaunchFailure& failure) {
  hvmm::supervisor::v1::ToDaemon message;
  auto* failed = message.mutable_event()->mutable_failed();
  failed->set_code(failure.code);
  failed->set_message(failure.message);
  failed->set_exit_status(failure.exit_status);
  return message;
}

}  // namespace hvmm::daemon::vmproc
