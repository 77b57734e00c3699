// Coalescing guest page frame numbers into runs, as the balloon hands them over.
//
// A virtio-balloon buffer carries up to 256 PFNs (4 KiB frames) in any order, possibly
// repeated. Changing the map once per run instead of once per PFN keeps the notifier events,
// the walks and the fallocate calls per buffer to the number of runs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "hvmm/base/address.h"

namespace hvmm::vmm {

// The runs of a set of PFNs, and the PFNs that no IPA range can hold (2^52 - 1 and above).
struct PfnRuns {
  std::vector<IpaRange> runs;  // sorted, disjoint, not adjacent, page aligned
  uint64_t invalid = 0;
};

// Sort `pfns`, drop duplicates, and merge adjacent frames into runs. Every valid PFN ends up
// in exactly one run, and every page of a run is one of the PFNs.
PfnRuns coalesce_pfns(std::span<const uint64_t> pfns);

}  // namespace hvmm::vmm
