// GenerationAllocator: TLB tags (stage-2 VMIDs, x86 PCIDs used as ASIDs) recycled by
// generation, the scheme of Linux's arm64 ASID allocator (arch/arm64/mm/context.c).
//
// A user (a VM, an address space) holds one 64-bit value {generation, id}: the generation
// lives in the bits above the id width. A slot (a CPU, a vCPU thread) runs one user at a time.
// - Within a generation an id is handed out at most once (a bitmap); ids are never freed one
//   by one. Id 0 is never handed out.
// - Switching a slot to a user whose value carries the current generation is lock-free
//   (try_fast): it only swaps the slot's active value.
// - Otherwise the caller takes its own lock and calls assign(): the user keeps its old id when
//   it is still free (or was reserved for it), else takes the next free one. When the
//   generation is used up, rollover bumps the generation, clears the bitmap except the ids
//   running on some slot (those are reserved: their users keep them), and requests a flush of
//   every slot. assign() reports the rollover (for a caller that flushes everything at once)
//   and, per slot, whether this slot must flush before using the id (for a caller that
//   flushes each CPU's own TLB).
// - deactivate(slot) lets a slot run nothing, so its id is not reserved at the next rollover.
//
// Freestanding, header-only: no allocation and no lock. kMaxIdBits and kMaxSlots size the
// storage; the caller serialises assign() with its own lock (a std::mutex in the VMM, an
// interrupt-saving spinlock in the guest kernel) and passes its guard as proof.
#pragma once

#include <atomic>
#include <cstdint>

namespace hvmm {

// What assign() decided for one switch.
struct GenerationAssignment {
  uint64_t value = 0;        // the user's new {generation, id}; 0 when no id is free
  bool fresh = false;        // a new id was taken (the user did not keep its old one)
  bool rolled_over = false;  // this call started a new generation
  bool flush = false;        // this slot must flush its TLB before using `value`
};

// The allocator over ids 1 .. 2^bits - 1 (bits <= kMaxIdBits) and up to kMaxSlots slots.
// Constant-initialisable; init() before use.
template <unsigned kMaxIdBits, unsigned kMaxSlots>
class GenerationAllocator {
  static_assert(kMaxIdBits >= 1 && kMaxIdBits <= 24, "the bitmap of wider ids is too large");
  static_assert(kMaxSlots >= 1);

 public:
  static constexpr unsigned kMaxBits = kMaxIdBits;
  static constexpr unsigned kSlots = kMaxSlots;

  // Start generation 1 with every id free except 0 and every slot never used. Return false
  // when `bits` or `slots` exceed the storage (or are 0).
  bool init(unsigned bits, unsigned slots);

  // Switch `slot` to the user whose value is `value` without the lock. Return false when the
  // value is not of the current generation, or the slot was reset by a rollover (or parked by
  // deactivate after one) since its last assign(): the caller must then lock and assign().
  bool try_fast(uint64_t value, unsigned slot);

  // Give `user` (its atomic value, updated here) an id of the current generation and make it
  // the one running on `slot`. Call with the caller's lock held; `held` is that lock's guard.
  // When no id is free even after a rollover, return value 0 and leave user and slot as they
  // were (a rollover may still have happened: see rolled_over).
  template <typename LockGuard>
  GenerationAssignment assign(const LockGuard& held, std::atomic<uint64_t>& user, unsigned slot);

  // Let `slot` run nothing: its id is not reserved at the next rollover. Lock-free. A flush
  // requested for the slot by a rollover stays requested.
  void deactivate(unsigned slot);

  // The id part of a value.
  uint64_t id_of(uint64_t value) const { return value & mask_; }
  // The generation part of a value (counts from 1).
  uint64_t generation_of(uint64_t value) const { return value >> bits_; }
  // The current generation, shifted into place (or-able with an id).
  uint64_t current() const { return current_.load(std::memory_order_relaxed); }
  // True when `value` carries the current generation.
  bool is_current(uint64_t value) const { return ((value ^ current()) >> bits_) == 0; }
  unsigned bits() const { return bits_; }
  unsigned slots() const { return slots_; }
  // Ids one generation can hand out (id 0 excluded).
  uint64_t usable_ids() const { return mask_; }

 private:
  static constexpr unsigned kWords = ((uint64_t{1} << kMaxIdBits) + 63) / 64;

  // Active value of a slot that runs nothing: id 0 (nothing to reserve), non-zero (the fast
  // path may replace it).
  uint64_t idle_value() const { return uint64_t{1} << bits_; }
  // Active value of a slot deactivated after a rollover reset it: id 0, and never accepted by
  // the fast path, so the slot's next switch takes the locked path that delivers its flush.
  uint64_t parked_value() const { return ~mask_; }

  // What deactivate() stores over `old_active`: parked while a rollover's reset is pending.
  uint64_t idle_after(uint64_t old_active) const {
    return old_active == 0 || old_active == parked_value() ? parked_value() : idle_value();
  }

  uint64_t renew_or_take(uint64_t old_value, GenerationAssignment& out);
  bool update_reserved(uint64_t old_value, uint64_t new_value);
  uint64_t take_free();
  bool test_and_set(uint64_t id);
  void clear_bitmap();
  void rollover();

  unsigned bits_ = 0;
  unsigned slots_ = 0;
  uint64_t mask_ = 0;
  uint64_t next_search_ = 1;          // ids below it are all taken in this generation
  std::atomic<uint64_t> current_{0};  // generation << bits_
  uint64_t bitmap_[kWords] = {};      // ids taken in the current generation
  // Per slot: the value running there, 0 once a rollover reset it, or idle/parked.
  std::atomic<uint64_t> active_[kMaxSlots] = {};
  uint64_t reserved_[kMaxSlots] = {};   // per slot: the value kept across the last rollover
  bool flush_pending_[kMaxSlots] = {};  // per slot: a rollover happened since its last flush
};

template <unsigned B, unsigned S>
bool GenerationAllocator<B, S>::init(unsigned bits, unsigned slots) {
  if (bits == 0 || bits > kMaxBits || slots == 0 || slots > kSlots) {
    return false;
  }
  bits_ = bits;
  slots_ = slots;
  mask_ = (uint64_t{1} << bits) - 1;
  current_.store(uint64_t{1} << bits, std::memory_order_relaxed);
  clear_bitmap();
  for (unsigned slot = 0; slot < kSlots; ++slot) {
    active_[slot].store(0, std::memory_order_relaxed);
    reserved_[slot] = 0;
    flush_pending_[slot] = false;
  }
  next_search_ = 1;
  return true;
}

// The compare-exchange fails when a rollover reset the slot after the load: then the value
// may be stale and the locked path decides. Relaxed, as in Linux: the lock orders the rest.
template <unsigned B, unsigned S>
bool GenerationAllocator<B, S>::try_fast(uint64_t value, unsigned slot) {
  uint64_t old_active = active_[slot].load(std::memory_order_relaxed);
  return old_active != 0 && old_active != parked_value() && value != 0 && is_current(value) &&
         active_[slot].compare_exchange_strong(old_active, value, std::memory_order_relaxed);
}

// Re-check under the lock (another slot may have renewed the user meanwhile), renew or take
// an id, then publish it as the slot's active value and hand over the slot's flush request.
template <unsigned B, unsigned S>
template <typename LockGuard>
GenerationAssignment GenerationAllocator<B, S>::assign(const LockGuard& /*held*/,
                                                       std::atomic<uint64_t>& user, unsigned slot) {
  GenerationAssignment out;
  uint64_t value = user.load(std::memory_order_relaxed);
  if (value == 0 || !is_current(value)) {
    value = renew_or_take(value, out);
    if (value == 0) {
      return out;
    }
    user.store(value, std::memory_order_relaxed);
  }
  out.value = value;
  out.flush = flush_pending_[slot];
  flush_pending_[slot] = false;
  active_[slot].store(value, std::memory_order_relaxed);
  return out;
}

// A compare-exchange loop, so a rollover resetting the slot concurrently is never overwritten
// with the idle value (which would let the fast path skip the slot's flush).
template <unsigned B, unsigned S>
void GenerationAllocator<B, S>::deactivate(unsigned slot) {
  uint64_t old_active = active_[slot].load(std::memory_order_relaxed);
  while (!active_[slot].compare_exchange_weak(old_active, idle_after(old_active),
                                              std::memory_order_relaxed)) {
  }
}

// Keep the old id when it was reserved across a rollover or is still free in this
// generation; else take a free one, rolling over when none is left. Lock held.
template <unsigned B, unsigned S>
uint64_t GenerationAllocator<B, S>::renew_or_take(uint64_t old_value, GenerationAssignment& out) {
  if (old_value != 0) {
    const uint64_t renewed = current() | id_of(old_value);
    if (update_reserved(old_value, renewed) || !test_and_set(id_of(old_value))) {
      return renewed;
    }
  }
  uint64_t id = take_free();
  if (id == 0) {
    rollover();
    out.rolled_over = true;
    id = take_free();
    if (id == 0) {
      return 0;
    }
  }
  out.fresh = true;
  return current() | id;
}

// A user reserved across a rollover keeps its id: every slot that reserved the old value is
// moved to the new generation (a user may run on several slots).
template <unsigned B, unsigned S>
bool GenerationAllocator<B, S>::update_reserved(uint64_t old_value, uint64_t new_value) {
  bool hit = false;
  for (unsigned slot = 0; slot < slots_; ++slot) {
    if (reserved_[slot] == old_value) {
      reserved_[slot] = new_value;
      hit = true;
    }
  }
  return hit;
}

// Take the first free id at or above the search point (everything below it is taken: ids
// are never freed within a generation), skipping full words. Return 0 when none is left.
template <unsigned B, unsigned S>
uint64_t GenerationAllocator<B, S>::take_free() {
  for (uint64_t id = next_search_; id <= mask_; ++id) {
    if (bitmap_[id / 64] == ~uint64_t{0}) {
      id |= 63;
      continue;
    }
    if (!test_and_set(id)) {
      next_search_ = id + 1;
      return id;
    }
  }
  return 0;
}

// Set an id's bit and return whether it was already set.
template <unsigned B, unsigned S>
bool GenerationAllocator<B, S>::test_and_set(uint64_t id) {
  const uint64_t bit = uint64_t{1} << (id % 64);
  const bool was = (bitmap_[id / 64] & bit) != 0;
  bitmap_[id / 64] |= bit;
  return was;
}

// Free every id of the generation except 0.
template <unsigned B, unsigned S>
void GenerationAllocator<B, S>::clear_bitmap() {
  for (uint64_t& word : bitmap_) {
    word = 0;
  }
  bitmap_[0] = 1;
}

// New generation: reserve the id running on each slot (a slot reset by an earlier rollover
// and not switched since still runs its reserved value; an idle or parked slot reserves
// nothing), and request a flush of every slot. Lock held.
template <unsigned B, unsigned S>
void GenerationAllocator<B, S>::rollover() {
  current_.fetch_add(uint64_t{1} << bits_, std::memory_order_relaxed);
  clear_bitmap();
  for (unsigned slot = 0; slot < slots_; ++slot) {
    uint64_t running = active_[slot].exchange(0, std::memory_order_relaxed);
    if (running == 0) {
      running = reserved_[slot];
    }
    if (id_of(running) == 0) {
      running = 0;
    }
    reserved_[slot] = running;
    if (running != 0) {
      (void)test_and_set(id_of(running));
    }
    flush_pending_[slot] = true;
  }
  next_search_ = 1;
}

}  // namespace hvmm
