// Launch -> a built Machine, and what a failure is reported as.
//
// The order `hvmm run` uses, so a VM fails the same way under both: the spec and the files it
// names are checked, and the logs opened, before /dev/kvm is (bad arguments: exit status
// 120, INVALID_ARGUMENT or what the check said); then KVM is opened and the VM built
// (setup failed: 121, with the error's code: UNAVAILABLE for a missing /dev/kvm).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "hvmm/base/result.h"
#include "hvmm/supervisor/v1/channel.pb.h"
#include "hvmm/vmm/machine/machine.h"

namespace hvmm::daemon::vmproc {

// Why the VM could not be built: Event{failed}'s fields.
struct LaunchFailure {
  int code = 0;  // google.rpc.Code
  std::string message;
  int exit_status = 0;
};

// The outcome of building: the Machine, or why not.
struct BuiltMachine {
  std::unique_ptr<vmm::Machine> machine;
  std::optional<LaunchFailure> failure;
};

// The MachineConfig `launch` describes (spec, name, vmid, logs), checked without KVM. An
// empty Launch.fault_log sends the fault log's lines nowhere (the records still reach the
// daemon as events), so every fault, userfaultfd ones included, reaches the record sink.
Result<vmm::MachineConfig> machine_config_from_launch(const hvmm::supervisor::v1::Launch& launch,
                                                      std::span<const uint8_t> bundled_kernel);

// Build the VM `launch` describes.
BuiltMachine build_machine(const hvmm::supervisor::v1::Launch& launch,
                           std::span<const uint8_t> bundled_kernel);

// Warm start: check `prepare` (errors name prepare.memory_bytes / prepare.vcpus, status 120),
// open /dev/kvm and build the prepared part of a VM (vmm::Machine::prepare; 121).
BuiltMachine prepare_machine(const hvmm::supervisor::v1::Prepare& prepare);

// Finish the prepared `machine` for `launch`: the same checks as build_machine (120), then
// Machine::launch (a spec that does not match what was prepared: 120 naming the field;
// a failure to build: 121).
std::optional<LaunchFailure> launch_prepared(const hvmm::supervisor::v1::Launch& launch,
                                             std::span<const uint8_t> bundled_kernel,
                                             vmm::Machine& machine);

// The Failed event of `failure`.
hvmm::supervisor::v1::ToDaemon failed_event(const LaunchFailure& failure);

}  // namespace hvmm::daemon::vmproc
