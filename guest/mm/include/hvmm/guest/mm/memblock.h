// Memblock: the boot-time physical memory manager, alive until the buddy allocator exists.
//
// It keeps two sorted, merged lists of physical ranges: the RAM the firmware reported
// (add) and the parts of it already taken (reserve: kernel image, boot data, early tables,
// every alloc). The buddy allocator is then built from "RAM minus reserved".
// Fixed arrays only: it runs before any allocator exists.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hvmm::guest::mm {

// The value memblock and the page allocator return for "no physical address".
inline constexpr uint64_t kNoPhys = ~uint64_t{0};

// One physical range [base, base + size).
struct MemRange {
  uint64_t base = 0;
  uint64_t size = 0;
  uint64_t end() const { return base + size; }
};

// A sorted array of non-overlapping, non-adjacent ranges.
class RangeList {
 public:
  static constexpr unsigned kCapacity = 128;

  // Add [base, base + size), merging with neighbours. Return false if the table is full.
  bool add(uint64_t base, uint64_t size);
  // Remove [base, base + size) from every range. Return false if a split overflows the table.
  bool remove(uint64_t base, uint64_t size);
  // Report whether any byte of [base, base + size) is in the list.
  bool overlaps(uint64_t base, uint64_t size) const;
  // Sum the sizes of all ranges.
  uint64_t total() const;
  unsigned count() const { return count_; }
  const MemRange& at(unsigned index) const { return ranges_[index]; }

 private:
  void insert_at(unsigned index, MemRange range);
  void erase_at(unsigned index);

  MemRange ranges_[kCapacity] = {};
  unsigned count_ = 0;
};

// The boot allocator: RAM ranges, reserved ranges and a first-fit top-down allocator.
class Memblock {
 public:
  // Declare [base, base + size) as RAM (PVH memory map type 1).
  bool add(uint64_t base, uint64_t size) { return memory_.add(base, size); }
  // Mark [base, base + size) as in use: never handed out, never given to the buddy.
  bool reserve(uint64_t base, uint64_t size) { return reserved_.add(base, size); }
  // Give back [base, base + size) previously reserved or allocated.
  bool free(uint64_t base, uint64_t size) { return reserved_.remove(base, size); }

  // Allocate `size` bytes aligned to `align` (a power of two) from the highest free RAM
  // below `limit`, and reserve them. Return kNoPhys when nothing fits.
  uint64_t alloc(uint64_t size, uint64_t align, uint64_t limit = ~uint64_t{0});

  // Call fn(base, end) for every page-aligned free range (RAM minus reserved), ascending.
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
  constexpr uint64_t kMask = 4095;
  unsigned r = 0;
  for (unsigned m = 0; m < memory_.count(); ++m) {
    uint64_t cursor = memory_.at(m).base;
    const uint64_t mem_end = memory_.at(m).end();
    while (r < reserved_.count() && reserved_.at(r).end() <= cursor) {
      ++r;
    }
    unsigned k = r;
    while (cursor < mem_end) {
      uint64_t stop = mem_end;
      uint64_t next = mem_end;
      if (k < reserved_.count() && reserved_.at(k).base < mem_end) {
        stop = reserved_.at(k).base > cursor ? reserved_.at(k).base : cursor;
        next = reserved_.at(k).end();
      }
      const uint64_t lo = (cursor + kMask) & ~kMask;
      const uint64_t hi = stop & ~kMask;
      if (lo < hi) {
        fn(lo, hi);
      }
      cursor = next;
      ++k;
    }
  }
}

}  // namespace hvmm::guest::mm
