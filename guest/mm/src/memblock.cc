// Memblock: sorted range lists and the boot-time allocator (see memblock.h).
#include "hvmm/guest/mm/memblock.h"

namespace hvmm::guest::mm {

// Shift ranges right to open a slot at `index` (capacity checked by the caller).
void RangeList::insert_at(unsigned index, MemRange range) {
  for (unsigned i = count_; i > index; --i) {
    ranges_[i] = ranges_[i - 1];
  }
  ranges_[index] = range;
  ++count_;
}

// Shift ranges left over the slot at `index`.
void RangeList::erase_at(unsigned index) {
  for (unsigned i = index; i + 1 < count_; ++i) {
    ranges_[i] = ranges_[i + 1];
  }
  --count_;
}

// Insert, then absorb every following range that overlaps or touches the new one.
bool RangeList::add(uint64_t base, uint64_t size) {
  if (size == 0) {
    return true;
  }
  uint64_t end = base + size;
  unsigned i = 0;
  while (i < count_ && ranges_[i].end() < base) {
    ++i;
  }
  if (i < count_ && ranges_[i].base <= end) {
    // Overlaps or touches ranges_[i]: grow it, then swallow successors.
    if (base < ranges_[i].base) {
      ranges_[i].size += ranges_[i].base - base;
      ranges_[i].base = base;
    }
    if (end > ranges_[i].end()) {
      ranges_[i].size = end - ranges_[i].base;
    }
    while (i + 1 < count_ && ranges_[i + 1].base <= ranges_[i].end()) {
      end = ranges_[i + 1].end() > ranges_[i].end() ? ranges_[i + 1].end() : ranges_[i].end();
      ranges_[i].size = end - ranges_[i].base;
      erase_at(i + 1);
    }
    return true;
  }
  if (count_ == kCapacity) {
    return false;
  }
  insert_at(i, MemRange{base, size});
  return true;
}

// Trim or split every range meeting [base, base + size).
bool RangeList::remove(uint64_t base, uint64_t size) {
  const uint64_t end = base + size;
  for (unsigned i = 0; i < count_ && size != 0;) {
    MemRange& r = ranges_[i];
    if (r.end() <= base || r.base >= end) {
      ++i;
      continue;
    }
    if (r.base < base && r.end() > end) {  // split in two
      if (count_ == kCapacity) {
        return false;
      }
      const MemRange tail{end, r.end() - end};
      r.size = base - r.base;
      insert_at(i + 1, tail);
      return true;
    }
    if (r.base < base) {  // keep the head
      r.size = base - r.base;
      ++i;
    } else if (r.end() > end) {  // keep the tail
      r.size = r.end() - end;
      r.base = end;
      ++i;
    } else {  // fully covered
      erase_at(i);
    }
  }
  return true;
}

// Scan for an intersecting range.
bool RangeList::overlaps(uint64_t base, uint64_t size) const {
  for (unsigned i = 0; i < count_; ++i) {
    if (ranges_[i].base < base + size && base < ranges_[i].end()) {
      return true;
    }
  }
  return false;
}

// Sum all sizes.
uint64_t RangeList::total() const {
  uint64_t sum = 0;
  for (unsigned i = 0; i < count_; ++i) {
    sum += ranges_[i].size;
  }
  return sum;
}

// Walk free ranges from the top down and take the highest aligned fit below `limit`.
uint64_t Memblock::alloc(uint64_t size, uint64_t align, uint64_t limit) {
  if (size == 0 || align == 0 || (align & (align - 1)) != 0) {
    return kNoPhys;
  }
  uint64_t found = kNoPhys;
  for_each_free_range([&](uint64_t lo, uint64_t hi) {
    if (hi > limit) {
      hi = limit;
    }
    if (hi < lo + size || hi < size) {
      return;
    }
    const uint64_t candidate = (hi - size) & ~(align - 1);
    if (candidate >= lo && (found == kNoPhys || candidate > found)) {
      found = candidate;
    }
  });
  if (found != kNoPhys && !reserve(found, size)) {
    return kNoPhys;
  }
  return found;
}

// The first RAM frame.
uint64_t Memblock::start_pfn() const {
  return memory_.count() == 0 ? 0 : memory_.at(0).base >> 12;
}

// One past the last whole RAM frame.
uint64_t Memblock::end_pfn() const {
  return memory_.count() == 0 ? 0 : memory_.at(memory_.count() - 1).end() >> 12;
}

}  // namespace hvmm::guest::mm
