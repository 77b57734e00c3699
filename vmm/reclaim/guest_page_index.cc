// GuestPageIndex: IPA <-> page index (host offset / 4 KiB) over the RAM layout.
#include "hvmm/vmm/reclaim/guest_page_index.h"

#include <algorithm>

namespace hvmm::vmm {

// Keep the regions in host-offset order, so an index finds its region by binary search.
GuestPageIndex::GuestPageIndex(std::vector<RamRegion> ram, uint64_t backing_size)
    : ram_(std::move(ram)), pages_(backing_size / kPageSize) {
  std::sort(ram_.begin(), ram_.end(),
            [](const RamRegion& a, const RamRegion& b) { return a.offset < b.offset; });
}

// The region containing `ipa` (a handful of regions: a linear scan).
std::optional<uint64_t> GuestPageIndex::index_of(Ipa ipa) const {
  for (const RamRegion& region : ram_) {
    if (region.range.contains(ipa))
      return (region.offset + (ipa - region.range.start)).page_number();
  }
  return std::nullopt;
}

// The last region starting at or below the page's offset, if it reaches that far.
std::optional<Ipa> GuestPageIndex::ipa_of(uint64_t index) const {
  const HostOffset offset(index * kPageSize);
  auto after = std::upper_bound(ram_.begin(), ram_.end(), offset,
                                [](HostOffset o, const RamRegion& r) { return o < r.offset; });
  if (after == ram_.begin())
    return std::nullopt;
  const RamRegion& region = *(after - 1);
  if (offset - region.offset >= region.range.size)
    return std::nullopt;
  return region.range.start + (offset - region.offset);
}

// Intersect the run's host offsets with each region's.
void GuestPageIndex::append_ipa_runs(PageIndexRun run, std::vector<IpaRange>& out) const {
  const uint64_t lo = run.first * kPageSize;
  const uint64_t hi = (run.first + run.count) * kPageSize;
  for (const RamRegion& region : ram_) {
    const uint64_t start = std::max(lo, region.offset.value());
    const uint64_t end = std::min(hi, region.offset.value() + region.range.size);
    if (start >= end)
      continue;
    out.push_back(IpaRange{region.range.start + (start - region.offset.value()), end - start});
  }
}

}  // namespace hvmm::vmm
