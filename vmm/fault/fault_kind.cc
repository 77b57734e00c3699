// Names of fault kinds and resolutions, as the fault log writes them.
#include "hvmm/vmm/fault/fault_kind.h"

#include <array>

namespace hvmm::vmm {
namespace {

// Log names indexed by FaultKind's number (0 is hvmm.v1's UNSPECIFIED: no kind of ours).
constexpr std::array<std::string_view, kFaultKindCount> kKindNames = {
    "",          "unbacked",      "missing",         "ballooned",
    "reclaimed", "write-protect", "write-protected", "memslot-race",
};

// Log names and hvmm.v1.FaultResolution numbers indexed by FaultResolution's number.
struct ResolutionInfo {
  std::string_view name;
  int proto_number;  // 1 EMULATED, 2 ZERO_FILL, 3 COPIED, 4 UNPROTECTED, 6 FAILED, 7 WOKEN
};
constexpr std::array<ResolutionInfo, kFaultResolutionCount> kResolutions = {{
    {"read-all-ones", 1},
    {"write-dropped", 1},
    {"served-from-ram", 1},
    {"zero-fill", 2},
    {"woken", 7},
    {"unprotected", 4},
    {"failed", 6},
    {"restored", 3},
}};

}  // namespace

// Index the table; values outside the enum get a name that says so.
std::string_view fault_kind_name(FaultKind kind) {
  const auto index = static_cast<size_t>(kind);
  if (index == 0 || index >= kKindNames.size()) {
    return "kind-unknown";
  }
  return kKindNames[index];
}

// Index the table; values outside the enum get a name that says so.
std::string_view fault_resolution_name(FaultResolution resolution) {
  const auto index = static_cast<size_t>(resolution);
  return index < kResolutions.size() ? kResolutions[index].name : "resolution-unknown";
}

// Linear search: eight names.
std::optional<FaultKind> fault_kind_from_name(std::string_view name) {
  for (size_t index = 1; index < kKindNames.size(); ++index) {
    if (kKindNames[index] == name) {
      return static_cast<FaultKind>(index);
    }
  }
  return std::nullopt;
}

// 0 (UNSPECIFIED) for a value outside the enum.
int fault_resolution_proto_number(FaultResolution resolution) {
  const auto index = static_cast<size_t>(resolution);
  return index < kResolutions.size() ? kResolutions[index].proto_number : 0;
}

}  // namespace hvmm::vmm
