// PageAges: per guest page, when it was last written or refaulted, and its reclaim state.
//
// One 32-bit word per page of the memfd (indexed as in guest_page_index.h), plus a 16-bit
// field used while the page is reclaimed: 6 bytes per 4 KiB page (0.15%; 384 KiB for a
// 256 MiB guest, 24 MiB for 16 GiB). The word:
//
//   [23:0]   stamp: an epoch modulo 2^24. Resident: the epoch of the last write (a DirtySource
//            harvest or a VMM write), refault or abort, or the epoch the page was first seen
//            allocated. Pending or reclaimed: the epoch it left (its shadow entry).
//   [25:24]  state: unseen (never written, or punched out since: a hole), resident, pending
//            (handed to the reclaimer this epoch), reclaimed (its contents are in the store)
//   [26]     active: refaulted within its refault distance; a candidate again only once idle
//            for the active period (ReclaimPolicy::effective_active_epochs)
//   [27]     incompressible: the store would not keep it; not retried until written again
//   [28]     full: the store had no room; retried once it has room, or when written
//   [29]     skipped: the reclaimer found it no longer reclaimable (pinned, say); retried at
//            the next retry sweep (every cold period), or when written
//   [30]     touched: written or refaulted while pending (the window's outcome then loses)
//
// The 16-bit field holds, for a pending or reclaimed page, how long it had been idle when it
// left (saturating at 65535 epochs), so its idle age stays "epochs since the last write or
// refault" while the stamp is the shadow entry. The refault distance is epochs since the
// shadow entry, exactly as Linux's mm/workingset.c compares a refault to the page's eviction.
//
// Why 24 bits are enough: ages are differences modulo 2^24, read through a saturation at
// kMaxIdle = 2^22 epochs. Every kMaxIdle epochs advance() sweeps the table once and pulls
// every stamp older than kMaxIdle up to exactly kMaxIdle old, so no true age ever exceeds
// 2^23 and the modular difference is never ambiguous. Past kMaxIdle (48 days at a 1 s period,
// 11.6 hours at 10 ms) a page simply reads as kMaxIdle old: older than any cold threshold,
// refault distance or working-set bin. The epoch counter itself is 64 bits and never wraps.
//
// Thread safety: the write, refault and restore events run on any thread, lock-free (a CAS
// on the page's word); observe(), begin_reclaim(), end_reclaim() and advance() run on the
// engine's epoch thread, and also use CAS so a racing event is never overwritten.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

namespace hvmm::vmm {

// A page's state as the engine keeps it.
enum class PageAgeState : uint8_t {
  kUnseen,     // never written, or a hole again (not in host memory)
  kResident,   // in host memory
  kPending,    // handed to the reclaimer, its outcome not yet known
  kReclaimed,  // contents in the store, punched out of the memfd
};

// What the reclaimer did with one page it was handed.
enum class ReclaimOutcome : uint8_t {
  kReclaimed,
  kAborted,         // written during the window
  kIncompressible,  // the store would not keep it
  kFull,            // the store had no room
  kSkipped,         // no longer reclaimable
  kFailed,          // the window failed: nothing was committed
};

// One page, decoded.
struct PageAgeView {
  PageAgeState state = PageAgeState::kUnseen;
  uint64_t idle = 0;  // epochs since the last write or refault (saturated at kMaxIdle)
  bool active = false;
  bool incompressible = false;
  bool full = false;
  bool skipped = false;
};

// Which resident pages are candidates this epoch.
struct CandidateRule {
  uint64_t cold = 1;           // idle epochs before a page is a candidate
  uint64_t active = 1;         // idle epochs before an active page is one
  bool retry_full = false;     // the store has room again
  bool retry_skipped = false;  // a retry sweep epoch
};

// What a touch of a possibly reclaimed page did.
struct Promotion {
  bool restored = false;   // the page was reclaimed (or pending) and is resident again
  bool activated = false;  // within its refault distance: now active
};

class PageAges {
 public:
  static constexpr unsigned kStampBits = 24;
  static constexpr uint64_t kMaxIdle = uint64_t{1} << 22;
  static constexpr uint64_t kMaxIdleAtEviction = 0xffff;

  // `pages` pages, all unseen, the clock at epoch `first_epoch`.
  explicit PageAges(uint64_t pages, uint64_t first_epoch = 0);

  uint64_t pages() const { return words_.size(); }
  // The current epoch: events are stamped with it.
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  // End the current epoch (the epoch thread only); sweeps the table every kMaxIdle epochs.
  void advance();
  // Pages in the reclaimed state now.
  uint64_t reclaimed_now() const { return reclaimed_.load(std::memory_order_relaxed); }

  // The page was written (harvest, VMM write): resident, idle 0, flags that wait for a write
  // cleared. A reclaimed page written is back (counted like a refault).
  Promotion written(uint64_t index, uint64_t distance);
  // The guest touched the page through a refault: resident, idle 0; active when it was
  // reclaimed no more than `distance` epochs ago.
  Promotion refaulted(uint64_t index, uint64_t distance);
  // The VMM read the page and restored it from the store first: like a refault, but a page
  // that was resident anyway is left alone (a read is not a write).
  Promotion restored(uint64_t index, uint64_t distance);

  // Decode the page.
  PageAgeView view(uint64_t index) const;
  // Reconcile the page with the memfd (`allocated`: its host page holds memory) and decode
  // it: an unseen allocated page becomes resident (first seen now); a resident page that is a
  // hole and was not touched this epoch became one behind the engine's back (balloon, free
  // page reporting) and is unseen again.
  PageAgeView observe(uint64_t index, bool allocated);
  // Whether a decoded page is a candidate under `rule`.
  static bool is_candidate(const PageAgeView& view, const CandidateRule& rule);
  // Make a candidate page pending (its shadow entry is this epoch). Returns the word it had,
  // for end_reclaim(), or nothing when it is no longer a candidate (an event got in).
  std::optional<uint32_t> begin_reclaim(uint64_t index, const CandidateRule& rule);
  // Settle a pending page with the window's `outcome`; `before` is what begin_reclaim()
  // returned. A page refaulted meanwhile is already resident and left alone.
  void end_reclaim(uint64_t index, uint32_t before, ReclaimOutcome outcome);

 private:
  Promotion promote(uint64_t index, uint64_t distance, bool touch_resident);
  PageAgeView decode(uint32_t word, uint64_t index) const;
  uint32_t now_stamp() const;
  void sweep();

  std::vector<std::atomic<uint32_t>> words_;
  std::vector<std::atomic<uint16_t>> idle_at_eviction_;  // written by the epoch thread
  std::atomic<uint64_t> epoch_;
  std::atomic<uint64_t> reclaimed_{0};
};

}  // namespace hvmm::vmm
