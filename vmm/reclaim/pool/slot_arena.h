// SlotArena: slots of every size class, carved out of spans a backing provides.
//
// The pool keeps its in-memory entries in an arena over anonymous mappings (MemorySpans) and
// its swapped entries in an arena over extents of the swap file (SwapFile): the bookkeeping
// is the same. A class's spans are numbered (numbers of released spans are reused); a span
// keeps a stack of its free slots, and the spans with a free slot are listed so a slot is
// found in O(1). A span whose last slot is freed goes back to its backing at once.
//
// A Backing provides `using Storage = ...` (a move-only handle of one span),
// `Result<Storage> acquire(uint64_t bytes)` and `void release(Storage&&, uint64_t bytes)`.
// Not thread-safe: the pool calls it under its lock.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "hvmm/base/result.h"
#include "hvmm/vmm/reclaim/pool/size_classes.h"

namespace hvmm::vmm {

// Where one slot is: its class, the span's number in that class and the slot in the span.
struct SlotRef {
  uint16_t size_class = 0;
  uint32_t span = 0;
  uint32_t slot = 0;
};

template <typename Backing>
class SlotArena {
 public:
  using Storage = typename Backing::Storage;

  SlotArena(const SizeClassTable& classes, Backing& backing)
      : classes_(classes), backing_(backing), lists_(classes.size()) {}
  ~SlotArena() {
    for (ClassList& list : lists_) {
      for (std::unique_ptr<Span>& span : list.spans) {
        if (span) {
          backing_.release(std::move(span->storage), span_bytes_of(list));
        }
      }
    }
  }
  SlotArena(const SlotArena&) = delete;
  SlotArena& operator=(const SlotArena&) = delete;

  // A free slot of `size_class` in a span it already has, or nothing (no new span is made).
  std::optional<SlotRef> take_free_slot(uint16_t size_class) {
    ClassList& list = lists_[size_class];
    if (list.with_room.empty()) {
      return std::nullopt;
    }
    const uint32_t number = list.with_room.back();
    Span& span = *list.spans[number];
    const uint32_t slot = span.free.back();
    span.free.pop_back();
    if (span.free.empty()) {
      drop_from_room_list(list, span);
    }
    return SlotRef{size_class, number, slot};
  }

  // A new span for `size_class` from the backing, and its first slot.
  Result<SlotRef> take_slot_in_new_span(uint16_t size_class) {
    ClassList& list = lists_[size_class];
    auto storage = backing_.acquire(span_bytes_of(list));
    if (!storage) {
      return storage.error();
    }
    const uint32_t number = new_span_number(list);
    list.spans[number] = std::make_unique<Span>(std::move(*storage), number);
    Span& span = *list.spans[number];
    const uint32_t slots = classes_[size_class].slots_per_span;
    for (uint32_t slot = slots; slot-- > 0;) {
      span.free.push_back(slot);
    }
    span_bytes_ += span_bytes_of(list);
    add_to_room_list(list, span);
    return *take_free_slot(size_class);
  }

  // Give `ref` back; the span goes back to the backing when it was its last used slot.
  void free_slot(SlotRef ref) {
    ClassList& list = lists_[ref.size_class];
    Span& span = *list.spans[ref.span];
    if (span.free.empty()) {
      add_to_room_list(list, span);
    }
    span.free.push_back(ref.slot);
    if (span.free.size() == classes_[ref.size_class].slots_per_span) {
      drop_from_room_list(list, span);
      backing_.release(std::move(span.storage), span_bytes_of(list));
      span_bytes_ -= span_bytes_of(list);
      list.spans[ref.span].reset();
      list.free_numbers.push_back(ref.span);
    }
  }

  // The storage of the span holding `ref`, and the slot's byte offset in it.
  Storage& storage(SlotRef ref) { return lists_[ref.size_class].spans[ref.span]->storage; }
  uint64_t offset_in_span(SlotRef ref) const {
    return uint64_t{ref.slot} * classes_[ref.size_class].slot_size;
  }

  // Bytes of every span held.
  uint64_t span_bytes() const { return span_bytes_; }
  // Bytes a new span of `size_class` would add.
  uint64_t new_span_bytes(uint16_t size_class) const { return span_bytes_of(lists_[size_class]); }
  const SizeClassTable& classes() const { return classes_; }

 private:
  static constexpr uint32_t kNotListed = UINT32_MAX;

  // One span: its storage, its free slots (a stack) and its place in the room list.
  struct Span {
    Span(Storage s, uint32_t n) : storage(std::move(s)), number(n) {}
    Storage storage;
    uint32_t number;
    std::vector<uint32_t> free;
    uint32_t room_at = kNotListed;
  };
  // The spans of one class, the numbers of released ones, and those with a free slot.
  struct ClassList {
    std::vector<std::unique_ptr<Span>> spans;
    std::vector<uint32_t> free_numbers;
    std::vector<uint32_t> with_room;
  };

  uint64_t span_bytes_of(const ClassList& list) const {
    return classes_[static_cast<size_t>(&list - lists_.data())].span_bytes();
  }
  // A span number for a new span: a released one, or the next.
  static uint32_t new_span_number(ClassList& list) {
    if (!list.free_numbers.empty()) {
      const uint32_t number = list.free_numbers.back();
      list.free_numbers.pop_back();
      return number;
    }
    list.spans.emplace_back();
    return static_cast<uint32_t>(list.spans.size() - 1);
  }
  static void add_to_room_list(ClassList& list, Span& span) {
    span.room_at = static_cast<uint32_t>(list.with_room.size());
    list.with_room.push_back(span.number);
  }
  // Remove `span` from the room list by moving the last listed span into its place.
  static void drop_from_room_list(ClassList& list, Span& span) {
    const uint32_t last = list.with_room.back();
    list.with_room[span.room_at] = last;
    list.spans[last]->room_at = span.room_at;
    list.with_room.pop_back();
    span.room_at = kNotListed;
  }

  const SizeClassTable& classes_;
  Backing& backing_;
  std::vector<ClassList> lists_;
  uint64_t span_bytes_ = 0;
};

}  // namespace hvmm::vmm
