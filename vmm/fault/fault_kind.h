// FaultKind and FaultResolution: what a stage-2 fault was and what the VMM did about it.
//
// One enum each, shared by the fault log (the names below are the "kind" and "resolution"
// strings of its JSON lines) and the API: FaultKind's numbers are hvmm.v1.FaultKind's, value
// for value, and each FaultResolution names the hvmm.v1.FaultResolution it reports as
// (fault_resolution_proto_number). tests/unit/vmm/fault_kind_proto_test.cc fails when either
// side gains or renumbers a value the other does not follow.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace hvmm::vmm {

// What kind of access the map could not satisfy. Numbered as hvmm.v1.FaultKind.
enum class FaultKind : uint8_t {
  kMmioUnbacked = 1,  // "unbacked": no RAM and no device at the IPA (an MMIO exit)
  kMissing = 2,       // "missing": first touch of an absent page, or of a reported free page
  kBallooned = 3,     // "ballooned": refault of a page the balloon gave back
  kReclaimed = 4,     // "reclaimed": refault of a page whose contents are in the pool
  kWriteProtect = 5,  // "write-protect": a write to a write-tracked page (userfaultfd WP)
  kPermission = 6,    // "write-protected": a write the memslot's permissions refused
  kMemslotRace = 7,   // "memslot-race": RAM in the map but not (yet) in a memslot
};
inline constexpr size_t kFaultKindCount = 8;  // array size indexed by the numbers above

// What the VMM did. The numbers are this enum's own (several log names share a proto value).
enum class FaultResolution : uint8_t {
  kReadAllOnes = 0,    // "read-all-ones": an MMIO read with no device
  kWriteDropped = 1,   // "write-dropped": an MMIO write with no device, or refused
  kServedFromRam = 2,  // "served-from-ram": the access was emulated on the backing
  kZeroFill = 3,       // "zero-fill": the page (and its fault-around run) was zero filled
  kWoken = 4,          // "woken": another path had filled the page; the thread was only woken
  kUnprotected = 5,    // "unprotected": write protection was lifted
  kFailed = 6,         // "failed": not resolved; the VM is stopped
  kRestored = 7,       // "restored": a reclaimed page's contents were copied back from the store
};
inline constexpr size_t kFaultResolutionCount = 8;

// The log name of `kind` ("missing"), or "kind-unknown" for a value outside the enum.
std::string_view fault_kind_name(FaultKind kind);
// The log name of `resolution` ("zero-fill"), or "resolution-unknown".
std::string_view fault_resolution_name(FaultResolution resolution);
// The kind whose log name is `name`, if any.
std::optional<FaultKind> fault_kind_from_name(std::string_view name);
// The hvmm.v1.FaultResolution number `resolution` is reported as.
int fault_resolution_proto_number(FaultResolution resolution);

}  // namespace hvmm::vmm
