// SizeClassTable: the slot sizes the pool carves its spans into (the zsmalloc idea).
//
// An entry goes to the smallest class that holds it. Classes start at kMinSlotSize and grow
// by a step of 1/16 of their size (16 bytes below 512, then 32, 64, 128), so an entry wastes
// less than 1/16 of its slot; the last class is the largest entry the pool keeps. Each class
// draws spans of 1 to kMaxSpanPages contiguous pages, the count whose tail (the bytes left
// after the last whole slot) is the smallest share of the span, as zsmalloc chooses the pages
// of a zspage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hvmm::vmm {

inline constexpr uint32_t kMinSlotSize = 32;
inline constexpr uint32_t kMaxSpanPages = 4;

// One class: its slot size and the span it is carved from.
struct SizeClass {
  uint32_t slot_size = 0;
  uint32_t span_pages = 0;
  uint32_t slots_per_span = 0;

  uint64_t span_bytes() const;
  // Bytes of a span that no slot covers.
  uint64_t tail_bytes() const { return span_bytes() - uint64_t{slot_size} * slots_per_span; }
};

class SizeClassTable {
 public:
  // The classes for entries of up to `max_entry` bytes (at least kMinSlotSize).
  explicit SizeClassTable(uint32_t max_entry);

  size_t size() const { return classes_.size(); }
  const SizeClass& operator[](size_t index) const { return classes_[index]; }
  uint32_t max_entry() const { return classes_.back().slot_size; }
  // The smallest class whose slots hold `bytes` (1 .. max_entry()).
  uint16_t class_for(uint32_t bytes) const;

 private:
  std::vector<SizeClass> classes_;
};

}  // namespace hvmm::vmm
