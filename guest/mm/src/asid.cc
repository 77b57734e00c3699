// Generation-based ASID (PCID) allocation (see asid.h).
#include "hvmm/guest/mm/asid.h"

namespace hvmm::guest::mm {

// Start at generation 1 with every ASID free except 0.
bool AsidAllocator::init(unsigned bits) {
  if (bits == 0 || bits > kMaxBits) {
    return false;
  }
  bits_ = bits;
  asid_mask_ = (uint64_t{1} << bits) - 1;
  generation_.store(uint64_t{1} << bits, std::memory_order_relaxed);
  for (uint64_t& word : bitmap_) {
    word = 0;
  }
  bitmap_[0] = 1;
  next_hint_ = 1;
  return true;
}

// Set an ASID's bit and return whether it was already set.
bool AsidAllocator::bitmap_test_set(uint64_t asid) {
  const uint64_t bit = uint64_t{1} << (asid % 64);
  const bool was = (bitmap_[asid / 64] & bit) != 0;
  bitmap_[asid / 64] |= bit;
  return was;
}

// The first clear bit at or above `from`, or 0 when none is left in this generation.
uint64_t AsidAllocator::find_free(uint64_t from) const {
  const uint64_t limit = asid_mask_ + 1;
  for (uint64_t asid = from; asid < limit; ++asid) {
    if (bitmap_[asid / 64] == ~uint64_t{0}) {
      asid |= 63;
      continue;
    }
    if ((bitmap_[asid / 64] & (uint64_t{1} << (asid % 64))) == 0) {
      return asid;
    }
  }
  return 0;
}

// If `id` is some CPU's reserved (live at rollover) id, move it to the new generation.
bool AsidAllocator::check_update_reserved(uint64_t id, uint64_t new_id) {
  bool hit = false;
  for (uint64_t& reserved : reserved_) {
    if (reserved == id) {
      hit = true;
      reserved = new_id;
    }
  }
  return hit;
}

// New generation: keep only the ASIDs live on a CPU and make every CPU flush once.
void AsidAllocator::rollover() {
  generation_.fetch_add(uint64_t{1} << bits_, std::memory_order_relaxed);
  for (uint64_t& word : bitmap_) {
    word = 0;
  }
  bitmap_[0] = 1;
  for (unsigned cpu = 0; cpu < kMaxCpus; ++cpu) {
    uint64_t id = active_[cpu].exchange(0, std::memory_order_relaxed);
    if (id == 0) {
      id = reserved_[cpu];
    }
    if (id != 0) {
      (void)bitmap_test_set(id & asid_mask_);
    }
    reserved_[cpu] = id;
    flush_pending_[cpu] = true;
  }
  next_hint_ = 1;
  ++rollovers_;
}

// Keep the old ASID if it is still free (or reserved) in the new generation, else take
// a new one, rolling over when the space is exhausted. Lock held.
uint64_t AsidAllocator::new_context(AsidContext& ctx) {
  const uint64_t id = ctx.id.load(std::memory_order_relaxed);
  uint64_t generation = generation_.load(std::memory_order_relaxed);
  if (id != 0) {
    const uint64_t asid = id & asid_mask_;
    if (check_update_reserved(id, generation | asid)) {
      return generation | asid;
    }
    if (!bitmap_test_set(asid)) {
      return generation | asid;
    }
  }
  uint64_t asid = find_free(next_hint_);
  if (asid == 0) {
    rollover();
    generation = generation_.load(std::memory_order_relaxed);
    asid = find_free(1);
    if (asid == 0) {
      arch::mm_panic("asid: more live address spaces than ASIDs");
    }
  }
  (void)bitmap_test_set(asid);
  next_hint_ = asid + 1;
  ++allocations_;
  return generation | asid;
}

// Fast path without the lock when the context is current and this CPU was not reset by a
// rollover; otherwise (re)assign under the lock and report a pending flush.
AsidSwitch AsidAllocator::switch_to(AsidContext& ctx, unsigned cpu) {
  uint64_t id = ctx.id.load(std::memory_order_relaxed);
  uint64_t old_active = active_[cpu].load(std::memory_order_relaxed);
  const uint64_t generation = generation_.load(std::memory_order_relaxed);
  if (old_active != 0 && id != 0 && ((id ^ generation) >> bits_) == 0 &&
      active_[cpu].compare_exchange_strong(old_active, id, std::memory_order_relaxed)) {
    fast_switches_.fetch_add(1, std::memory_order_relaxed);
    return AsidSwitch{asid_of(id), false};
  }
  SpinGuard guard(lock_);
  id = ctx.id.load(std::memory_order_relaxed);
  if (id == 0 || ((id ^ generation_.load(std::memory_order_relaxed)) >> bits_) != 0) {
    id = new_context(ctx);
    ctx.id.store(id, std::memory_order_relaxed);
  }
  const bool need_flush = flush_pending_[cpu];
  flush_pending_[cpu] = false;
  active_[cpu].store(id, std::memory_order_relaxed);
  ++slow_switches_;
  return AsidSwitch{asid_of(id), need_flush};
}

// A snapshot of the counters.
AsidStats AsidAllocator::stats() const {
  return AsidStats{fast_switches_.load(std::memory_order_relaxed), slow_switches_, allocations_,
                   rollovers_};
}

}  // namespace hvmm::guest::mm
