// NotifierRegistry: interval subscriptions with sequence counts, deferred subscription
// changes while invalidations run.
#include "hvmm/stage2/mmu_notifier.h"

#include <algorithm>
#include <cassert>
#include <condition_variable>
#include <mutex>

namespace hvmm::stage2 {
namespace {

// Threads sleeping until a subscription's atomics change (read_begin() on the sequence,
// unsubscribe() on the in-flight count). Not std::atomic<T>::wait: with libstdc++ 12 a
// read_begin() sleeping on the 64-bit sequence (which waits through libstdc++'s hashed
// waiter pool, not a futex on the value) missed wake-ups depending on where the State
// happened to be allocated, and under nested KVM a VMM access then stalled until the next
// invalidation of the subscription or for good (ReclaimTest.IdleGuestKeepsOnlyTheIncompressiblePart
// timed out once a member was added to NotifierRegistry). A mutex and a condition variable,
// touched only while someone sleeps, cannot lose one: the changer's seq_cst update comes
// before its load of `sleeping`, the sleeper's increment before its load of the value, so
// one of the two sees the other.
struct Sleepers {
  std::mutex mutex;
  std::condition_variable changed;
  std::atomic<uint32_t> sleeping{0};

  // Call after the change (made seq_cst) a sleeper may be waiting for.
  void wake() {
    if (sleeping.load(std::memory_order_seq_cst) != 0) {
      std::lock_guard lock(mutex);
      changed.notify_all();
    }
  }
  // Sleep until `done()` (which reads the atomics seq_cst) is true.
  template <typename Done>
  void sleep_until(Done&& done) {
    sleeping.fetch_add(1, std::memory_order_seq_cst);
    {
      std::unique_lock lock(mutex);
      changed.wait(lock, done);
    }
    sleeping.fetch_sub(1, std::memory_order_seq_cst);
  }
};

}  // namespace

// The registry-side state of one subscription, shared with its handle.
struct IntervalSubscription::State {
  State(NotifierRegistry* registry_of, IpaRange watched, IntervalOps* callbacks, uint64_t number,
        std::string_view owner_name)
      : registry(registry_of), range(watched), ops(callbacks), id(number), owner(owner_name) {}

  std::atomic<NotifierRegistry*> registry;
  const IpaRange range;
  IntervalOps* const ops;  // nullptr: sequence only
  const uint64_t id;
  const std::string owner;
  uint64_t invalidations_seen = 0;  // overlapping starts (registry mutex)
  // Odd while an overlapping invalidation runs; seq_cst so it orders against TLB entry locks.
  std::atomic<uint64_t> sequence{0};
  unsigned active = 0;  // overlapping invalidations in progress (registry mutex)
  std::atomic<bool> removed{false};
  std::atomic<uint32_t> in_flight{0};  // callbacks running now
  Sleepers sequence_sleepers;          // read_begin() waiting for an even sequence
  Sleepers in_flight_sleepers;         // unsubscribe() waiting for callbacks to return
};

namespace {

using State = IntervalSubscription::State;

// Callbacks this thread is inside, innermost last: unsubscribe() from inside a callback must
// not wait for that callback to return.
thread_local std::vector<const State*> t_dispatching;

// Run `call(ops)` unless the subscription was removed. The in-flight count goes up before the
// removed flag is read (both seq_cst), so unsubscribe() either sees the count or stops us.
template <typename Call>
bool dispatch(State& state, Call&& call, bool fallback) {
  bool result = fallback;
  state.in_flight.fetch_add(1, std::memory_order_seq_cst);
  if (state.ops != nullptr && !state.removed.load(std::memory_order_seq_cst)) {
    t_dispatching.push_back(&state);
    result = call(*state.ops);
    t_dispatching.pop_back();
  }
  // Wake an unsubscribe() waiting for the count to drop to its own callbacks (not only to 0:
  // it may be inside one). If it set `removed` after this load, it reads the new count itself.
  state.in_flight.fetch_sub(1, std::memory_order_seq_cst);
  if (state.removed.load(std::memory_order_seq_cst))
    state.in_flight_sleepers.wake();
  return result;
}

// Move the sequence one step (odd → even or even → odd) and wake read_begin() waiters.
void step_sequence(State& state) {
  state.sequence.fetch_add(1, std::memory_order_seq_cst);
  state.sequence_sleepers.wake();
}

}  // namespace

// ---- IntervalSubscription ----

IntervalSubscription::~IntervalSubscription() {
  reset();
}

// Moving transfers the subscription; the source is left unsubscribed.
IntervalSubscription::IntervalSubscription(IntervalSubscription&& other) noexcept
    : state_(std::move(other.state_)) {}

IntervalSubscription& IntervalSubscription::operator=(IntervalSubscription&& other) noexcept {
  if (this != &other) {
    reset();
    state_ = std::move(other.state_);
  }
  return *this;
}

// Like mmu_interval_read_begin: an odd sequence means an overlapping invalidation is running,
// so wait for it to end rather than return a value that read_retry() would reject anyway.
uint64_t IntervalSubscription::read_begin() const {
  uint64_t sequence = state_->sequence.load(std::memory_order_seq_cst);
  while ((sequence & 1) != 0) {
    state_->sequence_sleepers.sleep_until(
        [&] { return state_->sequence.load(std::memory_order_seq_cst) != sequence; });
    sequence = state_->sequence.load(std::memory_order_seq_cst);
  }
  return sequence;
}

// seq_cst: ordered against the TLB entry lock taken around the check (see Stage2Tlb::fill).
bool IntervalSubscription::read_retry(uint64_t sequence) const {
  return state_->sequence.load(std::memory_order_seq_cst) != sequence;
}

// The raw sequence, for tests and diagnostics.
uint64_t IntervalSubscription::sequence() const {
  return state_->sequence.load(std::memory_order_seq_cst);
}

// The watched interval.
IpaRange IntervalSubscription::range() const {
  return state_->range;
}

// The id list() reports for this subscription.
uint64_t IntervalSubscription::id() const {
  return state_->id;
}

// Unsubscribe unless the registry is gone; idempotent.
void IntervalSubscription::reset() {
  if (state_ == nullptr)
    return;
  if (NotifierRegistry* registry = state_->registry.load(std::memory_order_acquire))
    registry->unsubscribe(state_);
  state_.reset();
}

// ---- NotifierRegistry ----

// Detach surviving subscriptions so their handles do not reach a dead registry.
NotifierRegistry::~NotifierRegistry() {
  std::lock_guard lock(mutex_);
  assert(iterations_ == 0 && "registry destroyed during an invalidation");
  for (const auto* list : {&subscriptions_, &deferred_add_})
    for (const auto& state : *list)
      state->registry.store(nullptr, std::memory_order_release);
}

// A subscription made while invalidations run is deferred; its sequence starts odd, so its
// first read_begin() waits until those invalidations (which it did not see start) are over.
Result<IntervalSubscription> NotifierRegistry::subscribe(IpaRange range, IntervalOps* ops,
                                                         std::string_view owner) {
  if (range.empty() || range.overflows()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "cannot subscribe to {}: the range is empty or overflows", range);
  }
  std::lock_guard lock(mutex_);
  if (released_) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "cannot subscribe to {}: the address space was released", range);
  }
  auto state = std::make_shared<State>(this, range, ops, next_id_++, owner);
  if (iterations_ > 0) {
    state->sequence.store(1, std::memory_order_seq_cst);
    deferred_add_.push_back(state);
    ++deferred_changes_;
  } else {
    subscriptions_.push_back(state);
  }
  return IntervalSubscription(std::move(state));
}

// Stop callbacks at once, drop the subscription now or when the running invalidations end,
// and wait for callbacks on other threads (not this thread's own) to return.
void NotifierRegistry::unsubscribe(const std::shared_ptr<State>& state) {
  state->removed.store(true, std::memory_order_seq_cst);
  {
    std::lock_guard lock(mutex_);
    auto pending = std::find(deferred_add_.begin(), deferred_add_.end(), state);
    if (pending != deferred_add_.end()) {
      deferred_add_.erase(pending);
    } else if (iterations_ > 0) {
      deferred_remove_.push_back(state);
      ++deferred_changes_;
    } else {
      std::erase(subscriptions_, state);
    }
  }
  const auto own =
      static_cast<uint32_t>(std::count(t_dispatching.begin(), t_dispatching.end(), state.get()));
  state->in_flight_sleepers.sleep_until(
      [&] { return state->in_flight.load(std::memory_order_seq_cst) <= own; });
}

// While iterations_ > 0 the subscription vector is frozen and may be read without the lock.
void NotifierRegistry::begin_iteration() {
  std::lock_guard lock(mutex_);
  ++iterations_;
}

void NotifierRegistry::end_iteration() {
  std::lock_guard lock(mutex_);
  if (--iterations_ == 0)
    apply_deferred_locked();
}

// Apply the subscription changes deferred while the set was frozen (Linux's mn_itree_inv_end).
void NotifierRegistry::apply_deferred_locked() {
  for (const auto& state : deferred_remove_)
    std::erase(subscriptions_, state);
  deferred_remove_.clear();
  for (auto& state : deferred_add_) {
    step_sequence(*state);  // odd → even: nothing is invalidating any more
    subscriptions_.push_back(std::move(state));
  }
  deferred_add_.clear();
}

// Visit overlapping subscriptions of the frozen set; the caller holds an iteration.
template <typename Visit>
void NotifierRegistry::for_each_overlapping(IpaRange range, Visit&& visit) {
  for (const auto& state : subscriptions_) {
    if (state->range.overlaps(range))
      visit(*state);
  }
}

// Bump the sequences first (under the lock, so concurrent invalidations count correctly),
// then call the subscribers without the lock so they may subscribe, unsubscribe or read.
Result<void> NotifierRegistry::invalidate_range_start(const Change& change) {
  {
    std::lock_guard lock(mutex_);
    ++iterations_;
    ++invalidations_;
    running_.emplace_back(&change, invalidations_);
    for_each_overlapping(change.range, [](State& state) {
      ++state.invalidations_seen;
      if (state.active++ == 0)
        step_sequence(state);
    });
  }
  std::vector<bool> started;
  bool refused = false;
  for_each_overlapping(change.range, [&](State& state) {
    if (refused) {
      started.push_back(false);
      return;
    }
    const bool ok = dispatch(
        state, [&](IntervalOps& ops) { return ops.invalidate_range_start(change); }, true);
    refused = !ok && !change.blockable;
    started.push_back(!refused);
  });
  if (!refused)
    return Ok();
  finish_invalidation(change, &started);
  std::lock_guard lock(mutex_);
  ++failed_starts_;
  return make_error(ErrorCode::kUnavailable,
                    "invalidation of {} ({}) refused: a subscriber would block; retry later",
                    change.range, change_reason_name(change.reason));
}

// Finish an invalidation begun with invalidate_range_start(change).
void NotifierRegistry::invalidate_range_end(const Change& change) {
  finish_invalidation(change, nullptr);
}

// Call the end op of every overlapping subscriber that started (all when `started` is null),
// then make sequences even where no overlapping invalidation is left, and unfreeze the set.
void NotifierRegistry::finish_invalidation(const Change& change, const std::vector<bool>* started) {
  size_t index = 0;
  for_each_overlapping(change.range, [&](State& state) {
    if (started == nullptr || (*started)[index])
      dispatch(
          state,
          [&](IntervalOps& ops) {
            ops.invalidate_range_end(change);
            return true;
          },
          true);
    ++index;
  });
  std::lock_guard lock(mutex_);
  for_each_overlapping(change.range, [](State& state) {
    assert(state.active > 0 && "invalidate_range_end without a matching start");
    if (--state.active == 0)
      step_sequence(state);
  });
  forget_running_locked(change);
  if (--iterations_ == 0)
    apply_deferred_locked();
}

// Drop `change` from the invalidations in progress (the latest entry, should it repeat).
void NotifierRegistry::forget_running_locked(const Change& change) {
  for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
    if (it->first == &change) {
      running_.erase(std::next(it).base());
      return;
    }
  }
}

// Both young walks ask every overlapping subscriber (no short cut: clear_young must reach all).
bool NotifierRegistry::clear_young(IpaRange range) {
  begin_iteration();
  bool young = false;
  for_each_overlapping(range, [&](State& state) {
    young |= dispatch(
        state, [&](IntervalOps& ops) { return ops.clear_young(range); }, false);
  });
  end_iteration();
  return young;
}

bool NotifierRegistry::test_young(IpaRange range) {
  begin_iteration();
  bool young = false;
  for_each_overlapping(range, [&](State& state) {
    young |= dispatch(
        state, [&](IntervalOps& ops) { return ops.test_young(range); }, false);
  });
  end_iteration();
  return young;
}

// Like mmu_notifier_release: every subscriber hears it once; sequences move by two so readers
// retry whatever they were doing, and nothing can subscribe afterwards.
void NotifierRegistry::release() {
  {
    std::lock_guard lock(mutex_);
    if (released_)
      return;
    released_ = true;
    ++iterations_;
  }
  for_each_overlapping(IpaRange{Ipa(0), UINT64_MAX}, [](State& state) {
    dispatch(
        state,
        [](IntervalOps& ops) {
          ops.release();
          return true;
        },
        true);
    state.sequence.fetch_add(2, std::memory_order_seq_cst);
    state.sequence_sleepers.wake();
  });
  end_iteration();
}

// A consistent snapshot of the counters, taken under the lock.
NotifierStats NotifierRegistry::stats() const {
  std::lock_guard lock(mutex_);
  return NotifierStats{
      .invalidations = invalidations_,
      .failed_starts = failed_starts_,
      .deferred_changes = deferred_changes_,
      .subscriptions = subscriptions_.size() + deferred_add_.size() - deferred_remove_.size(),
  };
}

// The frozen set plus the deferred changes, as stats() counts them, under the lock.
size_t NotifierRegistry::count_overlapping(IpaRange range) const {
  std::lock_guard lock(mutex_);
  auto overlapping = [&](const std::vector<std::shared_ptr<State>>& list) {
    return static_cast<size_t>(std::count_if(
        list.begin(), list.end(), [&](const auto& state) { return state->range.overlaps(range); }));
  };
  return overlapping(subscriptions_) + overlapping(deferred_add_) - overlapping(deferred_remove_);
}

}  // namespace hvmm::stage2

namespace hvmm::stage2 {

// Under the lock: the frozen set, the deferred additions, less the deferred removals.
std::vector<SubscriptionInfo> NotifierRegistry::list() const {
  std::lock_guard lock(mutex_);
  std::vector<SubscriptionInfo> out;
  for (const auto* states : {&subscriptions_, &deferred_add_}) {
    for (const auto& state : *states) {
      if (std::find(deferred_remove_.begin(), deferred_remove_.end(), state) !=
          deferred_remove_.end())
        continue;
      out.push_back(SubscriptionInfo{state->id, state->owner, state->range,
                                     state->sequence.load(std::memory_order_seq_cst),
                                     state->invalidations_seen});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const SubscriptionInfo& a, const SubscriptionInfo& b) { return a.id < b.id; });
  return out;
}

// A linear search: only the invalidations running right now are kept.
uint64_t NotifierRegistry::invalidation_number(const Change& change) const {
  std::lock_guard lock(mutex_);
  for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
    if (it->first == &change)
      return it->second;
  }
  return 0;
}

}  // namespace hvmm::stage2
