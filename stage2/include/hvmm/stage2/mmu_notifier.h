// MMU notifiers for one VM's guest-physical space, after Linux's mmu_interval_notifier and
// mmu_notifier ops (include/linux/mmu_notifier.h, mm/mmu_notifier.c).
//
// A subscriber registers an interval of IPA space and an IntervalOps. Every invalidation of
// an overlapping range:
//   invalidate_range_start(change)  bumps the interval's sequence to odd, then calls
//                                   ops.invalidate_range_start
//   ... the map / the backing changes ...
//   invalidate_range_end(change)    calls ops.invalidate_range_end, then makes the sequence
//                                   even again (once no overlapping invalidation is left)
// Readers that cache what the map says (the Translator, a device's ring mapping) follow the
// mmu_interval_read_begin / read_retry pattern:
//   seq = sub.read_begin();          waits while an overlapping invalidation is in progress
//   ... look the map up ...
//   if (sub.read_retry(seq)) redo;   an invalidation started since read_begin
//   ... install the cached result, atomically with a final read_retry check ...
// Subscribing and unsubscribing are safe at any time, from any thread and from inside a
// callback: while invalidations are running the subscription set is frozen and changes are
// deferred (as in Linux's deferred list), and unsubscribe() from another thread waits until
// no callback of that subscription runs, so the ops object may be destroyed afterwards.
//
// Each subscription has an owner name ("translator", "watch", ...) and counts the
// invalidations that overlapped it; list() is a snapshot of them for people and the API.
// Every invalidation has a number in its registry (1, 2, ...), which both of its phases can
// read back with invalidation_number(), so a watcher can pair a start with its end.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/stage2/change.h"
#include "hvmm/stage2/stage2_map.h"
#include "hvmm/stage2/stage2_tlb.h"

namespace hvmm::stage2 {

// What a subscriber is told. Defaults do nothing and report "not young".
class IntervalOps {
 public:
  virtual ~IntervalOps() = default;
  // The range is about to change. Return false only when !change.blockable and the subscriber
  // would have to block (the invalidation is then abandoned, like -EAGAIN in Linux).
  virtual bool invalidate_range_start(const Change& /*change*/) { return true; }
  // The change is complete.
  virtual void invalidate_range_end(const Change& /*change*/) {}
  // Clear and report the accessed state the subscriber tracks for `range`.
  virtual bool clear_young(IpaRange /*range*/) { return false; }
  // Report, without clearing, whether the subscriber saw `range` accessed.
  virtual bool test_young(IpaRange /*range*/) { return false; }
  // The address space is going away; no invalidation follows.
  virtual void release() {}
};

class NotifierRegistry;

// IntervalSubscription is a move-only handle; destroying it unsubscribes.
class IntervalSubscription {
 public:
  IntervalSubscription() = default;
  ~IntervalSubscription();
  IntervalSubscription(IntervalSubscription&& other) noexcept;
  IntervalSubscription& operator=(IntervalSubscription&& other) noexcept;
  IntervalSubscription(const IntervalSubscription&) = delete;
  IntervalSubscription& operator=(const IntervalSubscription&) = delete;

  // Wait until no invalidation overlapping the interval is in progress; return the sequence.
  uint64_t read_begin() const;
  // True when an overlapping invalidation started (or is running) since read_begin() gave
  // `sequence`: whatever was read must be discarded.
  bool read_retry(uint64_t sequence) const;
  // The current sequence, odd while an overlapping invalidation is in progress.
  uint64_t sequence() const;
  IpaRange range() const;
  // The registry's id of this subscription (the one list() reports).
  uint64_t id() const;
  bool subscribed() const { return state_ != nullptr; }
  // Unsubscribe now (the destructor does it too).
  void reset();

  struct State;  // shared with the registry

 private:
  friend class NotifierRegistry;
  explicit IntervalSubscription(std::shared_ptr<State> state) : state_(std::move(state)) {}

  std::shared_ptr<State> state_;  // knows its registry (null once the registry is gone)
};

// Counters of a registry.
struct NotifierStats {
  uint64_t invalidations = 0;     // invalidate_range_start calls
  uint64_t failed_starts = 0;     // non-blockable starts a subscriber refused
  uint64_t deferred_changes = 0;  // subscribe/unsubscribe applied late
  size_t subscriptions = 0;       // live subscriptions
};

// One subscription as list() reports it.
struct SubscriptionInfo {
  uint64_t id = 0;    // unique in its registry, in subscription order from 1
  std::string owner;  // subscribe()'s owner name ("" when none was given)
  IpaRange interval;
  uint64_t sequence = 0;            // odd while an overlapping invalidation runs
  uint64_t invalidations_seen = 0;  // overlapping invalidation starts so far
};

class NotifierRegistry {
 public:
  NotifierRegistry() = default;
  // Subscriptions that outlive the registry become inert (their sequence stays put).
  ~NotifierRegistry();
  NotifierRegistry(const NotifierRegistry&) = delete;
  NotifierRegistry& operator=(const NotifierRegistry&) = delete;

  // Watch `range` with `ops` (which must outlive the subscription; nullptr for a pure
  // sequence counter) on behalf of `owner` (a short name list() reports). Fails for an empty
  // or overflowing range, or after release().
  Result<IntervalSubscription> subscribe(IpaRange range, IntervalOps* ops,
                                         std::string_view owner = {});

  // Begin an invalidation of change.range. On error (a subscriber refused a non-blockable
  // change) the invalidation is already finished and invalidate_range_end must not be called.
  Result<void> invalidate_range_start(const Change& change);
  // Finish the invalidation begun with the same change.
  void invalidate_range_end(const Change& change);
  // Ask overlapping subscribers to clear and report their accessed state; true if any was.
  bool clear_young(IpaRange range);
  // Ask overlapping subscribers whether `range` was accessed.
  bool test_young(IpaRange range);
  // Tell every subscriber the address space is gone; later subscribe() calls fail.
  void release();

  NotifierStats stats() const;
  // Live subscriptions whose interval overlaps `range` (what an invalidation of it reaches).
  size_t count_overlapping(IpaRange range) const;
  // The live subscriptions (deferred ones included, removed ones not), in subscription order.
  std::vector<SubscriptionInfo> list() const;
  // The number of the invalidation `change` is (the registry's first is 1), from its
  // invalidate_range_start until its invalidate_range_end returns, for callbacks that pair
  // the two phases; 0 when `change` is not an invalidation in progress.
  uint64_t invalidation_number(const Change& change) const;

 private:
  friend class IntervalSubscription;
  template <typename Visit>
  void for_each_overlapping(IpaRange range, Visit&& visit);
  void begin_iteration();
  void end_iteration();
  void apply_deferred_locked();
  void unsubscribe(const std::shared_ptr<IntervalSubscription::State>& state);
  void finish_invalidation(const Change& change, const std::vector<bool>* started);
  void forget_running_locked(const Change& change);

  mutable std::mutex mutex_;
  std::condition_variable idle_;
  // Frozen while iterations_ > 0; mutations then go to the deferred lists.
  std::vector<std::shared_ptr<IntervalSubscription::State>> subscriptions_;
  std::vector<std::shared_ptr<IntervalSubscription::State>> deferred_add_;
  std::vector<std::shared_ptr<IntervalSubscription::State>> deferred_remove_;
  unsigned iterations_ = 0;  // invalidations and young/release walks in progress
  bool released_ = false;
  uint64_t next_id_ = 1;
  // The invalidations in progress and their numbers (a handful: one per changing thread).
  std::vector<std::pair<const Change*, uint64_t>> running_;
  uint64_t invalidations_ = 0;
  uint64_t failed_starts_ = 0;
  uint64_t deferred_changes_ = 0;
};

// NotifierHooks drive a registry from a Stage2Map's break-before-make: range_start begins an
// invalidation and range_end finishes it. A subscriber refusing a non-blockable change makes
// range_start fail, so the map does not commit (change.h); the registry has then already
// finished that invalidation and the map does not call this hook's range_end. Register it on
// the map before any hook that relies on the sequence having been bumped (e.g.
// TlbInvalidationHooks, which runs in range_updated).
class NotifierHooks final : public ChangeHooks {
 public:
  explicit NotifierHooks(NotifierRegistry& registry) : registry_(registry) {}
  Result<void> range_start(const Change& change) override {
    return registry_.invalidate_range_start(change);
  }
  void range_end(const Change& change) override { registry_.invalidate_range_end(change); }

 private:
  NotifierRegistry& registry_;
};

// TlbNotifierOps makes a Stage2Tlb a notifier subscriber, like a secondary MMU: every
// invalidation that overlaps the subscription drops (vmid, change.range) in
// invalidate_range_start. It covers invalidations that do not come from the map (the VMM
// changing the backing: memslots, snapshots); the registry bumps the sequence before calling
// it, which is the order Stage2Tlb::fill relies on. Subscribe it over the whole IPA space.
// Nothing in the VMM subscribes one yet: all its changes go through the map (translator.h).
class TlbNotifierOps final : public IntervalOps {
 public:
  TlbNotifierOps(Stage2Tlb& tlb, uint16_t vmid) : tlb_(tlb), vmid_(vmid) {}
  // Follow the VM to a new VMID.
  void set_vmid(uint16_t vmid) { vmid_.store(vmid, std::memory_order_relaxed); }
  // Drop the cached range; never blocks, so non-blockable changes are accepted too.
  bool invalidate_range_start(const Change& change) override {
    tlb_.invalidate_range(vmid_.load(std::memory_order_relaxed), change.range);
    return true;
  }

 private:
  Stage2Tlb& tlb_;
  std::atomic<uint16_t> vmid_;
};

// Clear the accessed state of `range` in both the map (descriptor AF) and the subscribers,
// like kvm_age_gfn combined with the secondary MMUs; true if either saw an access. Both are
// always asked: clearing must reach everyone. The caller holds the map's lock.
inline bool clear_young(Stage2Map& map, NotifierRegistry& registry, IpaRange range) {
  const bool map_young = map.mkold(range);
  const bool subscriber_young = registry.clear_young(range);
  return map_young || subscriber_young;
}
// Report whether `range` was accessed according to the map or any subscriber.
inline bool test_young(const Stage2Map& map, NotifierRegistry& registry, IpaRange range) {
  const bool map_young = map.test_young(range);
  const bool subscriber_young = registry.test_young(range);
  return map_young || subscriber_young;
}

}  // namespace hvmm::stage2
