// The pool's size classes and their span sizes.
#include "hvmm/vmm/reclaim/pool/size_classes.h"

#include <algorithm>
#include <bit>
#include <cassert>

#include "hvmm/base/address.h"

namespace hvmm::vmm {
namespace {

// The step from a class of `size` bytes to the next: 1/16 of the size's power of two, at
// least 16 bytes (entries are byte-granular, but slots stay 16-byte aligned in their span).
uint32_t class_step(uint32_t size) {
  return std::max<uint32_t>(16, std::bit_floor(size) / 16);
}

// The class of `slot_size` with the span size that wastes the smallest share in its tail
// (the fewest pages on a tie).
SizeClass make_class(uint32_t slot_size) {
  SizeClass best;
  for (uint32_t pages = 1; pages <= kMaxSpanPages; ++pages) {
    SizeClass candidate{slot_size, pages, static_cast<uint32_t>(pages * kPageSize / slot_size)};
    if (candidate.slots_per_span == 0) {
      continue;
    }
    // tail / span compared without division: a * d < c * b.
    if (best.slots_per_span == 0 ||
        candidate.tail_bytes() * best.span_bytes() < best.tail_bytes() * candidate.span_bytes()) {
      best = candidate;
    }
  }
  return best;
}

}  // namespace

uint64_t SizeClass::span_bytes() const {
  return uint64_t{span_pages} * kPageSize;
}

SizeClassTable::SizeClassTable(uint32_t max_entry) {
  max_entry = std::max(max_entry, kMinSlotSize);
  for (uint32_t size = kMinSlotSize; size < max_entry; size += class_step(size)) {
    classes_.push_back(make_class(size));
  }
  classes_.push_back(make_class(max_entry));
}

uint16_t SizeClassTable::class_for(uint32_t bytes) const {
  assert(bytes <= max_entry());
  const auto at = std::lower_bound(
      classes_.begin(), classes_.end(), bytes,
      [](const SizeClass& size_class, uint32_t wanted) { return size_class.slot_size < wanted; });
  return static_cast<uint16_t>(at - classes_.begin());
}

}  // namespace hvmm::vmm
