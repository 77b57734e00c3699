// Stage2Tlb: entry locking, invalidations and counters (fast paths are inline in the header).
#include "hvmm/stage2/stage2_tlb.h"

#include <algorithm>
#include <bit>
#include <cassert>

namespace hvmm::stage2 {

// Name the rights for error messages ("read+write").
const char* access_name(Access access) {
  switch (static_cast<uint8_t>(access)) {
    case 0:
      return "no";
    case 1:
      return "read";
    case 2:
      return "write";
    case 3:
      return "read+write";
    case 4:
      return "execute";
    default:
      return "read+write+execute";
  }
}

// Threads take counter shards round-robin, so up to kShards threads never share one
// (see CounterShard for what happens beyond).
size_t tlb_counter_shard_index() {
  static std::atomic<size_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed);
}

// A power-of-two size lets index_of() mask instead of divide.
Stage2Tlb::Stage2Tlb(size_t entries)
    : mask_(std::bit_ceil(entries < 16 ? size_t{16} : entries) - 1),
      entries_(std::make_unique<Entry[]>(mask_ + 1)),
      shards_(std::make_unique<CounterShard[]>(kShards)) {}

// Spin until the sequence is even, then make it odd. The compare-exchange is seq_cst: fill()
// relies on it being ordered before its predicate's load of the notifier sequence, and the
// invalidations rely on their own sequence load being ordered after the notifier bump.
uint64_t Stage2Tlb::lock_entry(Entry& entry) {
  for (unsigned spins = 0;; ++spins) {
    uint64_t sequence = entry.sequence.load(std::memory_order_seq_cst);
    if ((sequence & 1) == 0 &&
        entry.sequence.compare_exchange_weak(sequence, sequence + 1, std::memory_order_seq_cst))
      return sequence + 1;
    if (spins > 64)
      std::this_thread::yield();
  }
}

// Release the entry. An unchanged entry gets its old sequence back, so lookups that raced
// with a no-op writer are not turned into misses.
void Stage2Tlb::unlock_entry(Entry& entry, uint64_t locked_sequence, bool changed) {
  entry.sequence.store(changed ? locked_sequence + 1 : locked_sequence - 1,
                       std::memory_order_release);
}

// Release stores pair with the acquire loads of lookup() (see there).
void Stage2Tlb::store_entry(Entry& entry, uint64_t tag, uint64_t value) {
  entry.tag.store(tag, std::memory_order_release);
  entry.value.store(value, std::memory_order_release);
}

// Remove the entry if `match(tag)`. A quick unlocked check skips entries that do not match;
// it is exact because a consistent even-sequence snapshot shows what any later fill must
// start from, and such a fill re-checks its predicate after this invalidation's notifier
// bump. Returns 1 when an entry was removed.
template <typename Match>
uint64_t Stage2Tlb::invalidate_entry_if(Entry& entry, Match&& match) {
  const uint64_t before = entry.sequence.load(std::memory_order_seq_cst);
  const uint64_t tag = entry.tag.load(std::memory_order_acquire);
  if ((before & 1) == 0 && entry.sequence.load(std::memory_order_seq_cst) == before && !match(tag))
    return 0;
  const uint64_t locked = lock_entry(entry);
  const bool hit = match(entry.tag.load(std::memory_order_relaxed));
  if (hit)
    store_entry(entry, 0, 0);
  unlock_entry(entry, locked, hit);
  return hit ? 1 : 0;
}

// Visit every entry once; used when a range is larger than the array, and for VMID/all.
template <typename Match>
uint64_t Stage2Tlb::scan_invalidate(Match&& match) {
  uint64_t removed = 0;
  for (size_t i = 0; i <= mask_; ++i)
    removed += invalidate_entry_if(entries_[i], match);
  full_scans_.fetch_add(1, std::memory_order_relaxed);
  return removed;
}

// Page by page when the range has fewer pages than the array, otherwise one scan.
uint64_t Stage2Tlb::invalidate_range(uint16_t vmid, IpaRange range) {
  range_invalidations_.fetch_add(1, std::memory_order_relaxed);
  if (range.empty())
    return 0;
  // Pages at or above 2^48 are never cached, so the range is clipped to that.
  const uint64_t top_page = (uint64_t{1} << (kMaxIpaBits - kPageShift)) - 1;
  const uint64_t first = range.start.page_number();
  if (first > top_page)
    return 0;
  const uint64_t last =
      std::min(top_page, range.overflows() ? UINT64_MAX >> kPageShift
                                           : (range.end().value() - 1) >> kPageShift);
  uint64_t removed = 0;
  if (last - first >= capacity()) {
    removed = scan_invalidate([&](uint64_t tag) {
      return tag != 0 && tag_vmid(tag) == vmid && tag_page(tag) >= first && tag_page(tag) <= last;
    });
  } else {
    for (uint64_t page = first; page <= last; ++page) {
      const uint64_t wanted = make_tag(vmid, page);
      removed += invalidate_entry_if(entries_[index_of(vmid, page)],
                                     [&](uint64_t tag) { return tag == wanted; });
    }
  }
  entries_invalidated_.fetch_add(removed, std::memory_order_relaxed);
  return removed;
}

// One scan: a VM can have entries anywhere in the array.
uint64_t Stage2Tlb::invalidate_vmid(uint16_t vmid) {
  vmid_invalidations_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t removed =
      scan_invalidate([&](uint64_t tag) { return tag != 0 && tag_vmid(tag) == vmid; });
  entries_invalidated_.fetch_add(removed, std::memory_order_relaxed);
  return removed;
}

// One scan that empties every entry (used by VMID rollover).
uint64_t Stage2Tlb::invalidate_all() {
  full_invalidations_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t removed = scan_invalidate([](uint64_t tag) { return tag != 0; });
  entries_invalidated_.fetch_add(removed, std::memory_order_relaxed);
  return removed;
}

// Sum the shards; concurrent lookups may or may not be included.
TlbStats Stage2Tlb::stats() const {
  TlbStats stats;
  for (size_t i = 0; i < kShards; ++i) {
    stats.hits += shards_[i].hits.load(std::memory_order_relaxed);
    stats.misses += shards_[i].misses.load(std::memory_order_relaxed);
    stats.fills += shards_[i].fills.load(std::memory_order_relaxed);
    stats.fills_refused += shards_[i].fills_refused.load(std::memory_order_relaxed);
  }
  stats.range_invalidations = range_invalidations_.load(std::memory_order_relaxed);
  stats.vmid_invalidations = vmid_invalidations_.load(std::memory_order_relaxed);
  stats.full_invalidations = full_invalidations_.load(std::memory_order_relaxed);
  stats.entries_invalidated = entries_invalidated_.load(std::memory_order_relaxed);
  stats.full_scans = full_scans_.load(std::memory_order_relaxed);
  return stats;
}

// Descriptors changed: drop whatever the TLB cached for the range, whatever the change kind.
void TlbInvalidationHooks::range_updated(const Change& change) {
  tlb_.invalidate_range(vmid_.load(std::memory_order_relaxed), change.range);
}

}  // namespace hvmm::stage2
