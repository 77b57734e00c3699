// PageCounts: how many pages of guest RAM are in each stage-2 Backing, kept up to date by
// a hook on the map (so no change can forget them) and checkable against a walk.
#pragma once

#include <array>
#include <cstdint>

#include "hvmm/base/address.h"
#include "hvmm/stage2/attributes.h"
#include "hvmm/stage2/change.h"
#include "hvmm/stage2/stage2_map.h"

namespace hvmm::vmm {

// Pages per Backing (resident, ballooned, reclaimed, reported), indexed by the enum.
struct PageCounts {
  std::array<uint64_t, 4> pages{};

  uint64_t& operator[](stage2::Backing backing) { return pages[static_cast<size_t>(backing)]; }
  uint64_t operator[](stage2::Backing backing) const { return pages[static_cast<size_t>(backing)]; }
  uint64_t total() const { return pages[0] + pages[1] + pages[2] + pages[3]; }
  // Add `other` page for page.
  PageCounts& operator+=(const PageCounts& other);
  bool operator==(const PageCounts&) const = default;
};

// Count the mapped pages of `range` by backing, walking the map's leaves (a 2 MiB block
// counts 512 pages). Unmapped holes count nowhere.
PageCounts count_pages(const stage2::Stage2Map& map, IpaRange range);

// PageCounter keeps the totals of a map: it counts the changing range before the change
// (range_start) and after it (range_updated) and applies the difference, so the cost is two
// walks of the range, never of the map. An abandoned change (range_end without
// range_updated) leaves the totals alone. Readers need the map lock, like the map itself.
class PageCounter final : public stage2::ChangeHooks {
 public:
  explicit PageCounter(const stage2::Stage2Map& map) : map_(map) {}

  Result<void> range_start(const stage2::Change& change) override;
  void range_updated(const stage2::Change& change) override;
  void range_end(const stage2::Change& change) override;

  const PageCounts& counts() const { return totals_; }

 private:
  const stage2::Stage2Map& map_;
  PageCounts totals_;
  PageCounts before_;
  bool counting_ = false;
};

}  // namespace hvmm::vmm
