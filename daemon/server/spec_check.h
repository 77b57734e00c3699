// The checks of a CreateVm request the daemon makes before it keeps a VM: its name, the
// bounds of its strings, and the whole spec through the VM process's own validation
// (options_from_spec, then make_machine_config with KVM's limits unknown), so a bad size, a
// missing kernel or a FIFO given as the initrd is refused at Create, not at Start.
//
// Every error is INVALID_ARGUMENT and starts with the request's field: "name: ...",
// "spec.memory_bytes: ...", "spec.balloon.initial_target_bytes: ...".
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "hvmm/base/result.h"
#include "hvmm/v1/vm.pb.h"

namespace hvmm::daemon {

inline constexpr size_t kMaxNameLength = 63;
inline constexpr size_t kMaxPathLength = 4096;
inline constexpr size_t kMaxCmdlineLength = 64 * 1024;
inline constexpr size_t kMaxPolicyLength = 1024;

// A VM name to create: 1..63 characters of [A-Za-z0-9._-], starting with a letter or digit.
Result<void> check_new_vm_name(std::string_view field, const std::string& name);

// A VM name to look up: not empty and not longer than any VM's name (the VM may not exist:
// that is NOT_FOUND, for the caller to say).
Result<void> check_vm_name_lookup(std::string_view field, const std::string& name);

// `text` for a message: at most 64 bytes, non-printable bytes as '?'.
std::string quote_for_message(std::string_view text);

// The string fields of `spec` against their bounds.
Result<void> check_spec_strings(const hvmm::v1::VmSpec& spec);

// What the host memory policy is asked for: a floor within the VM's memory.
Result<void> check_spec_policy(const hvmm::v1::VmSpec& spec);

// The whole spec, as the VM process will see it; `bundled_kernel` stands for an empty
// spec.kernel. Nothing of the validated configuration is kept.
Result<void> check_spec(const std::string& name, const hvmm::v1::VmSpec& spec,
                        std::span<const uint8_t> bundled_kernel);

// A VmOptions validation message with its leading field (or, until every message names
// fields, the `hvmm run` flag it names) as the CreateVm field: "memory_bytes: ..." becomes
// "spec.memory_bytes: ...", "--memory 4096: ..." becomes "spec.memory_bytes 4096: ...".
std::string spec_field_message(const std::string& message);

}  // namespace hvmm::daemon
