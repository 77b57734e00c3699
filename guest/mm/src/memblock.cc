// Memblock: sorted range lists and the boot-time allocator (see memblock.h).
#include "hvmm/guest/mm/memblock.h"

namespace hvmm::guest::mm {

// Shift ranges right to open a slot at `index` (capacity checked by the caller).
void RangeList::insert_at(unsigned index, PhysRange range) {
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
bool RangeList::add(PhysRange range) {
  if (range.size == 0) {
    return true;
  }
  const PhysAddr base = range.start;
  PhysAddr end = range.end();
  unsigned i = 0;
  while (i < count_ && ranges_[i].end() < base) {
    ++i;
  }
  if (i < count_ && ranges_[i].start <= end) {
    // Overlaps or touches ranges_[i]: grow it, then swallow successors.
    if (base < ranges_[i].start) {
      ranges_[i].size += ranges_[i].start - base;
      ranges_[i].start = base;
    }
    if (end > ranges_[i].end()) {
      ranges_[i].size = end - ranges_[i].start;
    }
    while (i + 1 < count_ && ranges_[i + 1].start <= ranges_[i].end()) {
      end = ranges_[i + 1].end() > ranges_[i].end() ? ranges_[i + 1].end() : ranges_[i].end();
      ranges_[i].size = end - ranges_[i].start;
      erase_at(i + 1);
    }
    return true;
  }
  if (count_ == kCapacity) {
    return false;
  }
  insert_at(i, range);
  return true;
}

// Trim or split every range meeting [base, base + size).
bool RangeList::remove(PhysRange range) {
  const PhysAddr base = range.start;
  const PhysAddr end = range.end();
  for (unsigned i = 0; i < count_ && range.size != 0;) {
    PhysRange& r = ranges_[i];
    if (r.end() <= base || r.start >= end) {
      ++i;
      continue;
    }
    if (r.start < base && r.end() > end) {  // split in two
      if (count_ == kCapacity) {
        return false;
      }
      const PhysRange tail{end, r.end() - end};
      r.size = base - r.start;
      insert_at(i + 1, tail);
      return true;
    }
    if (r.start < base) {  // keep the head
      r.size = base - r.start;
      ++i;
    } else if (r.end() > end) {  // keep the tail
      r.size = r.end() - end;
      r.start = end;
      ++i;
    } else {  // fully covered
      erase_at(i);
    }
  }
  return true;
}

// Scan for an intersecting range.
bool RangeList::overlaps(PhysRange range) const {
  for (unsigned i = 0; i < count_; ++i) {
    if (ranges_[i].start < range.end() && range.start < ranges_[i].end()) {
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
PhysAddr Memblock::alloc(uint64_t size, uint64_t align, PhysAddr limit) {
  if (size == 0 || align == 0 || (align & (align - 1)) != 0) {
    return kNoPhys;
  }
  PhysAddr found = kNoPhys;
  for_each_free_range([&](PhysRange free) {
    const uint64_t lo = free.start.value();
    const uint64_t hi = free.end() > limit ? limit.value() : free.end().value();
    if (hi < lo + size || hi < size) {
      return;
    }
    const uint64_t candidate = align_down(hi - size, align);
    if (candidate >= lo && (found == kNoPhys || PhysAddr(candidate) > found)) {
      found = PhysAddr(candidate);
    }
  });
  if (found != kNoPhys && !reserve(PhysRange{found, size})) {
    return kNoPhys;
  }
  return found;
}

// The first RAM frame.
uint64_t Memblock::start_pfn() const {
  return memory_.count() == 0 ? 0 : memory_.at(0).start.page_number();
}

// One past the last whole RAM frame.
uint64_t Memblock::end_pfn() const {
  return memory_.count() == 0 ? 0 : memory_.at(memory_.count() - 1).end().page_number();
}

}  // namespace hvmm::guest::mm
