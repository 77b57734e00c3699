// Stage2Tlb: the VMM's cache of IPA page → host page, tagged by (VMID, IPA page).
//
// Every VMM-side guest-memory access (devices, loaders, tools) goes through a Translator,
// which looks here first and walks the Stage2Map only on a miss. Like a hardware TLB it holds
// what the map said when the entry was filled, including the permissions, and it must be
// invalidated whenever the map changes (TlbInvalidationHooks does that from range_updated).
//
// Structure: a direct-mapped array of entries, each {sequence, tag, value}, all atomics.
// - lookup() is lock-free: it reads the sequence, the tag and the value, and re-reads the
//   sequence; an odd or changed sequence means a writer was inside and counts as a miss.
// - fill() and the invalidations lock one entry at a time by moving its sequence from even to
//   odd with a compare-exchange; they never block lookups.
// - fill() takes a predicate evaluated while the entry is locked (e.g. "no MMU notifier
//   invalidation since read_begin()"): an invalidation that started after the predicate was
//   checked must lock the entry after the fill released it, so it removes what was filled.
//   This is KVM's mmu_invalidate_retry under mmu_lock, at the granularity of one entry. It
//   holds for invalidations that follow the notifier's sequence bump, as break-before-make
//   orders them (range_start, then range_updated); all these steps are seq_cst.
// - A range larger than the array is invalidated by one scan of the array, never page by page.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

#include "hvmm/base/address.h"
#include "hvmm/stage2/change.h"

namespace hvmm::stage2 {

// Access rights as a bit mask: what an access needs, or what an entry allows.
enum class Access : uint8_t {
  kNone = 0,
  kRead = 1,
  kWrite = 2,
  kExecute = 4,
};
constexpr Access operator|(Access a, Access b) {
  return static_cast<Access>(static_cast<uint8_t>(a) | static_cast<uint8_t>(b));
}
// True when `granted` includes every right in `needed`.
constexpr bool access_allows(Access granted, Access needed) {
  return (static_cast<uint8_t>(granted) & static_cast<uint8_t>(needed)) ==
         static_cast<uint8_t>(needed);
}
// "read", "write", "read+write", ...: for messages.
const char* access_name(Access access);

// A snapshot of the TLB's counters.
struct TlbStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t fills = 0;
  uint64_t fills_refused = 0;        // the fill predicate said the walk was stale
  uint64_t range_invalidations = 0;  // calls to invalidate_range
  uint64_t vmid_invalidations = 0;   // calls to invalidate_vmid
  uint64_t full_invalidations = 0;   // calls to invalidate_all
  uint64_t entries_invalidated = 0;  // entries actually removed by any invalidation
  uint64_t full_scans = 0;           // invalidations done by scanning the whole array
};

class Stage2Tlb {
 public:
  static constexpr size_t kDefaultEntries = 4096;
  static constexpr unsigned kMaxIpaBits = 48;

  // Make a TLB of `entries` entries (rounded up to a power of two, at least 16).
  explicit Stage2Tlb(size_t entries = kDefaultEntries);
  Stage2Tlb(const Stage2Tlb&) = delete;
  Stage2Tlb& operator=(const Stage2Tlb&) = delete;

  // Return the host address of `ipa` when an entry for (vmid, page of ipa) allows `needed`,
  // else nullptr. Lock-free; counts a hit or a miss.
  std::byte* lookup(uint16_t vmid, Ipa ipa, Access needed);

  // Install (vmid, page of ipa) → host_page (4 KiB aligned) with `granted` rights, if
  // `still_valid()` returns true while the entry is locked. Returns whether it was installed.
  // IPAs of 2^48 and above are never cached.
  template <typename Predicate>
  bool fill(uint16_t vmid, Ipa ipa, std::byte* host_page, Access granted, Predicate&& still_valid);
  // Install unconditionally (for callers that hold the map's lock across walk and fill).
  bool fill(uint16_t vmid, Ipa ipa, std::byte* host_page, Access granted) {
    return fill(vmid, ipa, host_page, granted, [] { return true; });
  }

  // Remove every entry of `vmid` whose page overlaps `range`; return how many there were.
  uint64_t invalidate_range(uint16_t vmid, IpaRange range);
  // Remove every entry of `vmid`; return how many there were.
  uint64_t invalidate_vmid(uint16_t vmid);
  // Remove every entry; return how many there were.
  uint64_t invalidate_all();

  size_t capacity() const { return mask_ + 1; }
  TlbStats stats() const;

 private:
  // One direct-mapped entry; 32 bytes so two share a cache line and none straddles one.
  struct alignas(32) Entry {
    std::atomic<uint64_t> sequence{0};  // odd while a writer holds the entry
    std::atomic<uint64_t> tag{0};       // 0: empty; else make_tag(vmid, page)
    std::atomic<uint64_t> value{0};     // host page address | Access bits
  };
  // Counters of the lookup and fill paths, one cache line per shard. Threads take shards
  // round-robin and bump them with a plain load and store (no locked instruction: that alone
  // would double the cost of a hit). Counts are exact while no two threads that run at the
  // same time share a shard (up to kShards threads); beyond that an increment can be lost.
  struct alignas(64) CounterShard {
    std::atomic<uint64_t> hits{0};
    std::atomic<uint64_t> misses{0};
    std::atomic<uint64_t> fills{0};
    std::atomic<uint64_t> fills_refused{0};
  };
  static constexpr size_t kShards = 64;
  static void bump(std::atomic<uint64_t>& counter) {
    counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  static constexpr uint64_t kValidTag = uint64_t{1} << 63;
  static constexpr unsigned kVmidShift = 36;  // page numbers of 48-bit IPAs fit below
  static constexpr uint64_t kAccessMask = 0x7;

  // Only IPAs below 2^48 have a tag: a larger page number would spill into the VMID bits
  // and alias another VM's entry (an untrusted guest address must never do that).
  static constexpr bool cacheable(Ipa ipa) { return (ipa.value() >> kMaxIpaBits) == 0; }
  static constexpr uint64_t make_tag(uint16_t vmid, uint64_t page) {
    return kValidTag | (uint64_t{vmid} << kVmidShift) | page;
  }
  static constexpr uint16_t tag_vmid(uint64_t tag) {
    return static_cast<uint16_t>(tag >> kVmidShift);
  }
  static constexpr uint64_t tag_page(uint64_t tag) {
    return tag & ((uint64_t{1} << kVmidShift) - 1);
  }
  size_t index_of(uint16_t vmid, uint64_t page) const {
    return (page ^ (uint64_t{vmid} * 0x9e3779b1u)) & mask_;
  }
  CounterShard& shard();

  uint64_t lock_entry(Entry& entry);
  static void unlock_entry(Entry& entry, uint64_t locked_sequence, bool changed);
  void store_entry(Entry& entry, uint64_t tag, uint64_t value);
  template <typename Match>
  uint64_t invalidate_entry_if(Entry& entry, Match&& match);
  template <typename Match>
  uint64_t scan_invalidate(Match&& match);

  size_t mask_;
  std::unique_ptr<Entry[]> entries_;
  std::unique_ptr<CounterShard[]> shards_;
  std::atomic<uint64_t> range_invalidations_{0};
  std::atomic<uint64_t> vmid_invalidations_{0};
  std::atomic<uint64_t> full_invalidations_{0};
  std::atomic<uint64_t> entries_invalidated_{0};
  std::atomic<uint64_t> full_scans_{0};
};

// TlbInvalidationHooks keep a Stage2Tlb coherent with one VM's Stage2Map: after the map
// updates descriptors (range_updated), every entry of (vmid, change.range) is removed.
// Every kind of change invalidates, aging included, so VMM accesses after an mkold walk
// the map again.
class TlbInvalidationHooks final : public ChangeHooks {
 public:
  TlbInvalidationHooks(Stage2Tlb& tlb, uint16_t vmid) : tlb_(tlb), vmid_(vmid) {}
  // Follow the VM to a new VMID (after a rollover gave it another one).
  void set_vmid(uint16_t vmid) { vmid_.store(vmid, std::memory_order_relaxed); }
  void range_updated(const Change& change) override;

 private:
  Stage2Tlb& tlb_;
  std::atomic<uint16_t> vmid_;
};

// ---- inline fast paths ----

// The index of this thread's counter shard, assigned on first use.
size_t tlb_counter_shard_index();

inline Stage2Tlb::CounterShard& Stage2Tlb::shard() {
  static thread_local size_t index = tlb_counter_shard_index();
  return shards_[index % kShards];
}

// Seqlock read: every load is acquire, so the second sequence load cannot move above the data
// loads, and a data load that sees a writer's release store forces the re-read to see the
// writer's odd sequence (or later). No fence is needed, which keeps TSan exact.
inline std::byte* Stage2Tlb::lookup(uint16_t vmid, Ipa ipa, Access needed) {
  const uint64_t page = ipa.page_number();
  Entry& entry = entries_[index_of(vmid, page)];
  const uint64_t before = entry.sequence.load(std::memory_order_acquire);
  const uint64_t tag = entry.tag.load(std::memory_order_acquire);
  const uint64_t value = entry.value.load(std::memory_order_acquire);
  const uint64_t after = entry.sequence.load(std::memory_order_acquire);
  const auto granted = static_cast<Access>(value & kAccessMask);
  if (before != after || (before & 1) != 0 || tag != make_tag(vmid, page) ||
      !access_allows(granted, needed) || !cacheable(ipa)) {
    bump(shard().misses);
    return nullptr;
  }
  bump(shard().hits);
  return reinterpret_cast<std::byte*>(value & ~kAccessMask) + ipa.page_offset();
}

// The predicate runs with the entry locked; see the header comment for why that closes the
// race with an invalidation.
template <typename Predicate>
bool Stage2Tlb::fill(uint16_t vmid, Ipa ipa, std::byte* host_page, Access granted,
                     Predicate&& still_valid) {
  if (!cacheable(ipa))
    return false;
  const uint64_t page = ipa.page_number();
  Entry& entry = entries_[index_of(vmid, page)];
  const uint64_t locked = lock_entry(entry);
  const bool valid = still_valid();
  if (valid) {
    store_entry(entry, make_tag(vmid, page),
                reinterpret_cast<uint64_t>(host_page) | static_cast<uint8_t>(granted));
  }
  unlock_entry(entry, locked, valid);
  CounterShard& counters = shard();
  bump(valid ? counters.fills : counters.fills_refused);
  return valid;
}

}  // namespace hvmm::stage2
