// Memblock: the boot-time physical memory manager, alive until the buddy allocator exists.
//
// It keeps two sorted, merged lists of physical ranges: the RAM the firmware reported
// (add) and the parts of it already taken (reserve: kernel image, boot data, early tables,
// every alloc). The buddy allocator is then built from "RAM minus reserved".
// Fixed arrays only: it runs before any allocator exists.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hvmm/base/address.h"

namespace hvmm::guest::mm {

// The value memblock and the page allocator return for "no physical address".
inline constexpr PhysAddr kNoPhys{~uint64_t{0}};

// A sorted array of non-overlapping, non-adjacent ranges.
class RangeList {
 public:
  static constexpr unsigned kCapacity = 128;

  // Add `range`, merging with neighbours. Return false if the table is full.
  bool add(PhysRange range);
  // Remove `range` from every range. Return false if a split overflows the table.
  bool remove(PhysRange range);
  // Report whether any byte of `range` is in the list.
  bool overlaps(PhysRange range) const;
  // Sum the sizes of all ranges.
  uint64_t total() const;
  unsigned count() const { return count_; }
  const PhysRange& at(unsigned index) const { return ranges_[index]; }

 private:
  void insert_at(unsigned index, PhysRange range);
  void erase_at(unsigned index);

  PhysRange ranges_[kCapacity] = {};
  unsigned count_ = 0;
};

// The boot allocator: RAM ranges, reserved ranges and a first-fit top-down allocator.
class Memblock {
 public:
  // Declare `range` as RAM (PVH memory map type 1).
  bool add(PhysRange range) { return memory_.add(range); }
  // Mark `range` as in use: never handed out, never given to the buddy.
  bool reserve(PhysRange range) { return reserved_.add(range); }
  // Give back `range`, previously reserved or allocated.
  bool free(PhysRange range) { return reserved_.remove(range); }

  // Allocate `size` bytes aligned to `align` (a power of two) from the highest free RAM
  // below `limit`, and reserve them. Return kNoPhys when nothing fits.
  PhysAddr alloc(uint64_t size, uint64_t align, PhysAddr limit = kNoPhys);

  // Call fn(PhysRange) for every page-aligned, non-empty free range (RAM minus reserved),
  // ascending.
  template <typename Fn>
  void for_each_free_range(Fn&& fn) const;

  // Return the lowest and one-past-highest RAM page frame numbers.
  uint64_t start_pfn() const;
  uint64_t end_pfn() const;

  const RangeList& memory() const { return memory_; }
  const RangeList& reserved() const { return reserved_; }

 private:
  RangeList memory_;
  RangeList reserved_;
};

// Walk RAM ranges and cut out reserved ranges, both lists being sorted.
template <typename Fn>
void Memblock::for_each_free_range(Fn&& fn) const {
  unsigned r = 0;
  for (unsigned m = 0; m < memory_.count(); ++m) {
    PhysAddr cursor = memory_.at(m).start;
    const PhysAddr mem_end = memory_.at(m).end();
    while (r < reserved_.count() && reserved_.at(r).end() <= cursor) {
      ++r;
    }
    unsigned k = r;
    while (cursor < mem_end) {
      PhysAddr stop = mem_end;
      PhysAddr next = mem_end;
      if (k < reserved_.count() && reserved_.at(k).start < mem_end) {
        stop = reserved_.at(k).start > cursor ? reserved_.at(k).start : cursor;
        next = reserved_.at(k).end();
      }
      const PhysAddr lo = cursor.align_up(kPageSize);
      const PhysAddr hi = stop.align_down(kPageSize);
      if (lo < hi) {
        fn(PhysRange{lo, hi - lo});
      }
      cursor = next;
      ++k;
    }
  }
}

}  // namespace hvmm::guest::mm
