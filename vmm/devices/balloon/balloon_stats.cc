// Names of the balloon stat tags.
#include "hvmm/vmm/devices/balloon/balloon_stats.h"

namespace hvmm::vmm {

// Linux's names, indexed by tag.
const char* balloon_stat_name(uint16_t tag) {
  static constexpr const char* kNames[kBalloonStatCount] = {
      "swap-in",          "swap-out",     "major-faults",
      "minor-faults",     "free-memory",  "total-memory",
      "available-memory", "disk-caches",  "hugetlb-allocations",
      "hugetlb-failures", "oom-kills",    "alloc-stalls",
      "async-scans",      "direct-scans", "async-reclaims",
      "direct-reclaims"};
  return tag < kBalloonStatCount ? kNames[tag] : nullptr;
}

}  // namespace hvmm::vmm
