// GuestPageIndex: guest RAM pages numbered by their host offset, and back to IPAs.
//
// The reclaim engine keeps one small record per page of the memfd (page_ages.h). The memfd is
// contiguous while guest RAM is not (the MMIO hole), so the engine numbers pages by host
// offset: page i is the memfd's bytes [i * 4 KiB, (i + 1) * 4 KiB). DirtySource runs and
// ReclaimEvents arrive as IPAs and are translated here; candidates leave as IPA runs.
//
// The index is made from the layout at the engine's creation and never changes: a later
// unmap_ram() only removes ranges and keeps the host offsets of what stays (memory_layout.h),
// so the translation stays right for every page still mapped, and removed pages are punched
// out of the memfd, so they are never candidates again.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/vmm/memory/memory_layout.h"

namespace hvmm::vmm {

// A run of page indexes [first, first + count).
struct PageIndexRun {
  uint64_t first = 0;
  uint64_t count = 0;
};

class GuestPageIndex {
 public:
  // Number the pages of `ram` (regions inside a backing of `backing_size` bytes).
  GuestPageIndex(std::vector<RamRegion> ram, uint64_t backing_size);

  // Pages of the backing (the size of every per-page table).
  uint64_t pages() const { return pages_; }
  // The index of the page holding `ipa`, or nothing outside RAM.
  std::optional<uint64_t> index_of(Ipa ipa) const;
  // The IPA of page `index`, or nothing when no RAM region maps it.
  std::optional<Ipa> ipa_of(uint64_t index) const;
  // Call `visit` for each part of `run` that is RAM, as index runs (parts outside RAM are
  // left out). `run` need not be page aligned: every page it touches is visited.
  template <typename Visit>
  void for_each_run(IpaRange run, Visit&& visit) const;
  // Split index run `run` into IPA runs, one per RAM region it crosses (indexes no region
  // maps are left out), appended to `out`.
  void append_ipa_runs(PageIndexRun run, std::vector<IpaRange>& out) const;

 private:
  std::vector<RamRegion> ram_;  // sorted by host offset (ram_layout order)
  uint64_t pages_;
};

template <typename Visit>
void GuestPageIndex::for_each_run(IpaRange run, Visit&& visit) const {
  if (run.empty() || run.overflows())
    return;
  const Ipa first = run.start.align_down(kPageSize);
  const Ipa last = (run.end() - 1).align_down(kPageSize);
  for (const RamRegion& region : ram_) {
    const Ipa lo = std::max(first, region.range.start);
    const Ipa hi = std::min(last, region.range.end() - kPageSize);
    if (lo > hi)
      continue;
    const uint64_t start = (region.offset + (lo - region.range.start)).page_number();
    visit(PageIndexRun{start, (hi - lo) / kPageSize + 1});
  }
}

}  // namespace hvmm::vmm
