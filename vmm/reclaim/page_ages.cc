// PageAges: the per-page word (page_ages.h has the encoding) and its transitions.
#include "hvmm/vmm/reclaim/page_ages.h"

#include <algorithm>

namespace hvmm::vmm {
namespace {

constexpr uint32_t kStampMask = (uint32_t{1} << PageAges::kStampBits) - 1;
constexpr unsigned kStateShift = 24;
constexpr uint32_t kStateMask = uint32_t{0x3} << kStateShift;
constexpr uint32_t kActive = uint32_t{1} << 26;
constexpr uint32_t kIncompressible = uint32_t{1} << 27;
constexpr uint32_t kFull = uint32_t{1} << 28;
constexpr uint32_t kSkipped = uint32_t{1} << 29;
constexpr uint32_t kTouched = uint32_t{1} << 30;
// The flags a write clears: the page's contents changed, so every "not now" is void.
constexpr uint32_t kWaitForWrite = kIncompressible | kFull | kSkipped;

// The state bits of `word`.
PageAgeState state_of(uint32_t word) {
  return static_cast<PageAgeState>((word & kStateMask) >> kStateShift);
}

// A word with `state`, `stamp` and `flags`.
uint32_t make_word(PageAgeState state, uint32_t stamp, uint32_t flags) {
  return (stamp & kStampMask) | (uint32_t{static_cast<uint8_t>(state)} << kStateShift) | flags;
}

// Epochs from `stamp` to `now` (both modulo 2^24), saturated at kMaxIdle.
uint64_t age(uint32_t word, uint32_t now) {
  const uint64_t raw = (now - (word & kStampMask)) & kStampMask;
  return std::min(raw, PageAges::kMaxIdle);
}

}  // namespace

// Every word starts unseen (zero); the epoch counter starts at `first_epoch` (tests start it
// near a wrap).
PageAges::PageAges(uint64_t pages, uint64_t first_epoch)
    : words_(pages), idle_at_eviction_(pages), epoch_(first_epoch) {}

// The current epoch as a stamp.
uint32_t PageAges::now_stamp() const {
  return static_cast<uint32_t>(epoch() & kStampMask);
}

// Step the counter; at every multiple of kMaxIdle, clamp old stamps so that no age can grow
// past 2^23 before the next sweep (page_ages.h says why that keeps the modular ages exact).
void PageAges::advance() {
  const uint64_t next = epoch_.load(std::memory_order_relaxed) + 1;
  epoch_.store(next, std::memory_order_release);
  if (next % kMaxIdle == 0)
    sweep();
}

// Pull every stamp older than kMaxIdle up to kMaxIdle old (a CAS: events may race).
void PageAges::sweep() {
  const uint32_t now = now_stamp();
  const uint32_t oldest = static_cast<uint32_t>((now - kMaxIdle) & kStampMask);
  for (std::atomic<uint32_t>& slot : words_) {
    uint32_t word = slot.load(std::memory_order_relaxed);
    while (state_of(word) != PageAgeState::kUnseen && age(word, now) >= kMaxIdle) {
      const uint32_t clamped = (word & ~kStampMask) | oldest;
      if (slot.compare_exchange_weak(word, clamped, std::memory_order_relaxed))
        break;
    }
  }
}

// Decode `word` of page `index` at the current epoch.
PageAgeView PageAges::decode(uint32_t word, uint64_t index) const {
  PageAgeView view;
  view.state = state_of(word);
  view.active = (word & kActive) != 0;
  view.incompressible = (word & kIncompressible) != 0;
  view.full = (word & kFull) != 0;
  view.skipped = (word & kSkipped) != 0;
  if (view.state == PageAgeState::kUnseen)
    return view;
  view.idle = age(word, now_stamp());
  if (view.state == PageAgeState::kPending || view.state == PageAgeState::kReclaimed) {
    view.idle = std::min<uint64_t>(
        view.idle + idle_at_eviction_[index].load(std::memory_order_relaxed), kMaxIdle);
  }
  return view;
}

// Decode the page as it is now.
PageAgeView PageAges::view(uint64_t index) const {
  return decode(words_[index].load(std::memory_order_relaxed), index);
}

// A write makes any page resident and young; a pending page is only marked touched (the
// window's outcome is settled by end_reclaim); a reclaimed one is promoted.
Promotion PageAges::written(uint64_t index, uint64_t distance) {
  std::atomic<uint32_t>& slot = words_[index];
  uint32_t word = slot.load(std::memory_order_relaxed);
  for (;;) {
    const PageAgeState state = state_of(word);
    if (state == PageAgeState::kReclaimed)
      return promote(index, distance, true);
    const uint32_t next = state == PageAgeState::kPending
                              ? word | kTouched
                              : make_word(PageAgeState::kResident, now_stamp(), word & kActive);
    if (slot.compare_exchange_weak(word, next, std::memory_order_relaxed))
      return {};
  }
}

// A refault touches the page, whatever the engine thought of it.
Promotion PageAges::refaulted(uint64_t index, uint64_t distance) {
  return promote(index, distance, true);
}

// A VMM restore promotes only a page that was away.
Promotion PageAges::restored(uint64_t index, uint64_t distance) {
  return promote(index, distance, false);
}

// Reclaimed: resident now, active when the shadow entry is within `distance`. Pending: it
// came back inside its own window (distance 0), so active. Otherwise a plain touch (or
// nothing, unless `touch_resident`).
Promotion PageAges::promote(uint64_t index, uint64_t distance, bool touch_resident) {
  std::atomic<uint32_t>& slot = words_[index];
  uint32_t word = slot.load(std::memory_order_relaxed);
  for (;;) {
    const PageAgeState state = state_of(word);
    Promotion promotion;
    uint32_t flags = word & kActive;
    if (state == PageAgeState::kReclaimed || state == PageAgeState::kPending) {
      promotion.restored = true;
      promotion.activated = state == PageAgeState::kPending || age(word, now_stamp()) <= distance;
      flags = promotion.activated ? kActive : 0;
    } else if (!touch_resident) {
      return {};
    }
    const uint32_t next = make_word(PageAgeState::kResident, now_stamp(), flags);
    if (slot.compare_exchange_weak(word, next, std::memory_order_relaxed)) {
      if (state == PageAgeState::kReclaimed)
        reclaimed_.fetch_sub(1, std::memory_order_relaxed);
      return promotion;
    }
  }
}

// Only the two transitions the memfd can tell: first seen allocated, and punched behind the
// engine's back. A page touched this epoch is left alone: the extents were read before the
// touch, so "a hole" may already be stale.
PageAgeView PageAges::observe(uint64_t index, bool allocated) {
  std::atomic<uint32_t>& slot = words_[index];
  uint32_t word = slot.load(std::memory_order_relaxed);
  const PageAgeState state = state_of(word);
  uint32_t next = word;
  if (state == PageAgeState::kUnseen && allocated)
    next = make_word(PageAgeState::kResident, now_stamp(), 0);
  else if (state == PageAgeState::kResident && !allocated && (word & kStampMask) != now_stamp())
    next = 0;
  if (next != word && slot.compare_exchange_strong(word, next, std::memory_order_relaxed))
    word = next;
  return decode(word, index);
}

// Resident, idle for its threshold (the active one if active), and no "not now" flag that
// still holds.
bool PageAges::is_candidate(const PageAgeView& view, const CandidateRule& rule) {
  if (view.state != PageAgeState::kResident || view.incompressible)
    return false;
  if ((view.full && !rule.retry_full) || (view.skipped && !rule.retry_skipped))
    return false;
  return view.idle >= (view.active ? std::max(rule.cold, rule.active) : rule.cold);
}

// Pending with this epoch as its shadow entry; the idle age it had is kept beside it.
std::optional<uint32_t> PageAges::begin_reclaim(uint64_t index, const CandidateRule& rule) {
  std::atomic<uint32_t>& slot = words_[index];
  uint32_t word = slot.load(std::memory_order_relaxed);
  const PageAgeView before = decode(word, index);
  if (!is_candidate(before, rule))
    return std::nullopt;
  idle_at_eviction_[index].store(static_cast<uint16_t>(std::min(before.idle, kMaxIdleAtEviction)),
                                 std::memory_order_relaxed);
  const uint32_t pending = make_word(PageAgeState::kPending, now_stamp(), 0);
  if (!slot.compare_exchange_strong(word, pending, std::memory_order_relaxed))
    return std::nullopt;
  return word;
}

// The word a pending page settles to. A touch while pending wins over every outcome but
// kReclaimed (then the page left right after its last touch: idle 0 at eviction).
void PageAges::end_reclaim(uint64_t index, uint32_t before, ReclaimOutcome outcome) {
  std::atomic<uint32_t>& slot = words_[index];
  uint32_t word = slot.load(std::memory_order_relaxed);
  for (;;) {
    if (state_of(word) != PageAgeState::kPending)
      return;
    const bool touched = (word & kTouched) != 0;
    const uint32_t young = make_word(PageAgeState::kResident, now_stamp(), before & kActive);
    uint32_t next = young;
    switch (outcome) {
      case ReclaimOutcome::kReclaimed:
        next = make_word(PageAgeState::kReclaimed, word, 0);
        break;
      case ReclaimOutcome::kAborted:
        break;
      case ReclaimOutcome::kIncompressible:
        next = touched ? young : (before & ~kWaitForWrite) | kIncompressible;
        break;
      case ReclaimOutcome::kFull:
        next = touched ? young : (before & ~kWaitForWrite) | kFull;
        break;
      case ReclaimOutcome::kSkipped:
        next = touched ? young : (before & ~kWaitForWrite) | kSkipped;
        break;
      case ReclaimOutcome::kFailed:
        next = touched ? young : before;
        break;
    }
    if (outcome == ReclaimOutcome::kReclaimed && touched)
      idle_at_eviction_[index].store(0, std::memory_order_relaxed);
    if (slot.compare_exchange_weak(word, next, std::memory_order_relaxed)) {
      if (outcome == ReclaimOutcome::kReclaimed)
        reclaimed_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
}

}  // namespace hvmm::vmm
