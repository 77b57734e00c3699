// Page numbers and ranges from the guest, checked against RAM and coalesced into runs.
#include "hvmm/vmm/devices/balloon/pfn_runs.h"

#include <algorithm>

namespace hvmm::vmm {
namespace {

// Pages of `bytes`, rounded up.
uint64_t pages_of(uint64_t bytes) {
  return bytes / kPageSize + (bytes % kPageSize != 0 ? 1 : 0);
}

// Total pages of sorted disjoint runs.
uint64_t count_pages(const std::vector<IpaRange>& runs) {
  uint64_t pages = 0;
  for (const IpaRange& run : runs) {
    pages += run.size / kPageSize;
  }
  return pages;
}

// The part of `range` inside `region` (empty when they do not meet); neither may wrap.
IpaRange intersect(const IpaRange& range, const IpaRange& region) {
  const Ipa start = std::max(range.start, region.start);
  const Ipa end = std::min(range.end(), region.end());
  return start < end ? IpaRange{start, end - start} : IpaRange{start, 0};
}

}  // namespace

// Sort by start; extend the last run while the next starts at or before its end.
std::vector<IpaRange> coalesce_ranges(std::vector<IpaRange> ranges) {
  std::erase_if(ranges, [](const IpaRange& r) { return r.empty(); });
  std::sort(ranges.begin(), ranges.end(),
            [](const IpaRange& a, const IpaRange& b) { return a.start < b.start; });
  std::vector<IpaRange> runs;
  for (const IpaRange& range : ranges) {
    if (!runs.empty() && range.start <= runs.back().end()) {
      const Ipa end = std::max(runs.back().end(), range.end());
      runs.back().size = end - runs.back().start;
    } else {
      runs.push_back(range);
    }
  }
  return runs;
}

// One page per PFN, refused when it is not inside a RAM region.
PageRuns runs_from_pfns(std::span<const uint32_t> pfns, std::span<const IpaRange> ram) {
  PageRuns result;
  std::vector<IpaRange> pages;
  pages.reserve(pfns.size());
  for (uint32_t pfn : pfns) {
    const IpaRange page{Ipa(uint64_t{pfn} << kPageShift), kPageSize};
    const bool in_ram = std::any_of(ram.begin(), ram.end(), [&](const IpaRange& region) {
      return intersect(page, region).size == kPageSize;
    });
    if (in_ram) {
      pages.push_back(page);
    } else {
      ++result.refused;
    }
  }
  result.runs = coalesce_ranges(std::move(pages));
  result.pages = count_pages(result.runs);
  return result;
}

// Clip each aligned range to every RAM region; what no region holds is refused.
PageRuns runs_from_ranges(std::span<const IpaRange> ranges, std::span<const IpaRange> ram) {
  PageRuns result;
  std::vector<IpaRange> parts;
  for (const IpaRange& range : ranges) {
    if (!range.start.is_aligned(kPageSize) || !is_aligned(range.size, kPageSize) ||
        range.overflows()) {
      result.refused += pages_of(range.size);
      continue;
    }
    uint64_t inside = 0;
    for (const IpaRange& region : ram) {
      const IpaRange part = intersect(range, region);
      if (!part.empty()) {
        parts.push_back(part);
        inside += part.size;
      }
    }
    result.refused += (range.size - inside) / kPageSize;
  }
  result.runs = coalesce_ranges(std::move(parts));
  result.pages = count_pages(result.runs);
  return result;
}

}  // namespace hvmm::vmm
