// Sorting and merging PFNs into runs of IPA.
#include "hvmm/vmm/memory/pfn_runs.h"

#include <algorithm>

namespace hvmm::vmm {

// PFNs at or above this would overflow a 64-bit IPA (the last frame's end included).
inline constexpr uint64_t kPfnLimit = (uint64_t{1} << (64 - kPageShift)) - 1;

PfnRuns coalesce_pfns(std::span<const uint64_t> pfns) {
  PfnRuns result;
  std::vector<uint64_t> sorted;
  sorted.reserve(pfns.size());
  for (uint64_t pfn : pfns) {
    if (pfn >= kPfnLimit) {
      ++result.invalid;
      continue;
    }
    sorted.push_back(pfn);
  }
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  for (uint64_t pfn : sorted) {
    const Ipa ipa(pfn << kPageShift);
    if (!result.runs.empty() && result.runs.back().end() == ipa) {
      result.runs.back().size += kPageSize;
    } else {
      result.runs.push_back(IpaRange{ipa, kPageSize});
    }
  }
  return result;
}

}  // namespace hvmm::vmm
