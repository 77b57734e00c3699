// Page counts by backing: the walk, and the hook that keeps totals from changes.
#include "hvmm/vmm/memory/page_counts.h"

namespace hvmm::vmm {

PageCounts& PageCounts::operator+=(const PageCounts& other) {
  for (size_t i = 0; i < pages.size(); ++i)
    pages[i] += other.pages[i];
  return *this;
}

PageCounts count_pages(const stage2::Stage2Map& map, IpaRange range) {
  PageCounts counts;
  map.walk_leaves(range, [&](IpaRange part, HostOffset, unsigned, stage2::Descriptor leaf) {
    counts[leaf.state().backing] += part.size / kPageSize;
  });
  return counts;
}

// Only changes that add, remove or re-state pages move the counts; protect and aging do not.
Result<void> PageCounter::range_start(const stage2::Change& change) {
  counting_ = change.kind == stage2::ChangeKind::kMap ||
              change.kind == stage2::ChangeKind::kUnmap ||
              change.kind == stage2::ChangeKind::kPageState;
  if (counting_)
    before_ = count_pages(map_, change.range);
  return Ok();
}

// Unsigned wrap-around makes "totals - before + after" exact even when a count drops.
void PageCounter::range_updated(const stage2::Change& change) {
  if (!counting_)
    return;
  const PageCounts after = count_pages(map_, change.range);
  for (size_t i = 0; i < totals_.pages.size(); ++i)
    totals_.pages[i] = totals_.pages[i] - before_.pages[i] + after.pages[i];
  counting_ = false;
}

void PageCounter::range_end(const stage2::Change&) {
  counting_ = false;
}

}  // namespace hvmm::vmm
