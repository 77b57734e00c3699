// Pure helpers that turn guest-provided page numbers and ranges into the runs a
// BalloonBackend is given: every page checked against guest RAM (a page outside RAM, e.g.
// in the MMIO hole, is refused and counted), then sorted, de-duplicated and coalesced. No
// accepted page is lost and none is added (property-tested in tests/unit/vmm).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "hvmm/base/address.h"

namespace hvmm::vmm {

// PageRuns is the result: disjoint, sorted, non-adjacent runs of whole pages.
struct PageRuns {
  std::vector<IpaRange> runs;
  uint64_t pages = 0;    // accepted pages (duplicates once)
  uint64_t refused = 0;  // pages refused (outside RAM, or in a misaligned range)
};

// Sort `ranges` by start and merge those that overlap or touch.
std::vector<IpaRange> coalesce_ranges(std::vector<IpaRange> ranges);
// Runs of the 4 KiB pages `pfns` that lie inside `ram`.
PageRuns runs_from_pfns(std::span<const uint32_t> pfns, std::span<const IpaRange> ram);
// Runs of the parts of `ranges` inside `ram`; a range whose start or size is not page-aligned
// is refused whole (its pages rounded up), as are the pages of a range outside RAM.
PageRuns runs_from_ranges(std::span<const IpaRange> ranges, std::span<const IpaRange> ram);

}  // namespace hvmm::vmm
