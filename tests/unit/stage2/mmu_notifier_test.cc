// NotifierRegistry: sequence counts, ops delivery, deferred subscription changes, young ops,
// release, and the Stage2Map hooks adapter.
#include "hvmm/stage2/mmu_notifier.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "hvmm/stage2/stage2_map.h"

namespace hvmm::stage2 {
namespace {

using namespace std::chrono_literals;

constexpr IpaRange kLow{Ipa(0x0), 0x10000};
constexpr IpaRange kHigh{Ipa(0x100000), 0x10000};

Change change_of(IpaRange range, bool blockable = true) {
  return Change{range, ChangeKind::kUnmap, ChangeReason::kBalloon, blockable};
}

// Records every op as a line, and runs optional actions inside the callbacks.
class RecordingOps : public IntervalOps {
 public:
  bool invalidate_range_start(const Change& change) override {
    record(fmt::format("start {} {} {}", change.range, change_reason_name(change.reason),
                       change.blockable ? "blockable" : "atomic"));
    if (on_start)
      on_start();
    return accept_start;
  }
  void invalidate_range_end(const Change& change) override {
    record(fmt::format("end {}", change.range));
  }
  bool clear_young(IpaRange range) override {
    record(fmt::format("clear_young {}", range));
    const bool was = young;
    young = false;
    return was;
  }
  bool test_young(IpaRange range) override {
    record(fmt::format("test_young {}", range));
    return young;
  }
  void release() override { record("release"); }

  std::vector<std::string> take() {
    std::lock_guard lock(mutex_);
    return std::exchange(events_, {});
  }

  bool accept_start = true;
  bool young = false;
  std::function<void()> on_start;

 private:
  void record(std::string event) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  std::mutex mutex_;
  std::vector<std::string> events_;
};

// Empty or overflowing ranges cannot be subscribed to.
TEST(MmuNotifierTest, SubscribeValidatesRange) {
  NotifierRegistry registry;
  EXPECT_FALSE(registry.subscribe(IpaRange{Ipa(0x1000), 0}, nullptr).ok());
  auto overflowing = registry.subscribe(IpaRange{Ipa(UINT64_MAX - 0xfff), 0x2000}, nullptr);
  ASSERT_FALSE(overflowing.ok());
  EXPECT_EQ(overflowing.error().code, ErrorCode::kInvalidArgument);
}

// The sequence is odd exactly while an overlapping invalidation runs, and read_retry reports
// any invalidation since read_begin.
TEST(MmuNotifierTest, SequenceFollowsOverlappingInvalidations) {
  NotifierRegistry registry;
  auto sub = std::move(registry.subscribe(kLow, nullptr)).value();
  const uint64_t before = sub.read_begin();
  EXPECT_EQ(before % 2, 0u);
  EXPECT_FALSE(sub.read_retry(before));
  ASSERT_TRUE(registry.invalidate_range_start(change_of(IpaRange{Ipa(0xf000), 0x2000})).ok());
  EXPECT_EQ(sub.sequence() % 2, 1u);
  EXPECT_TRUE(sub.read_retry(before));
  registry.invalidate_range_end(change_of(IpaRange{Ipa(0xf000), 0x2000}));
  EXPECT_EQ(sub.sequence() % 2, 0u);
  EXPECT_TRUE(sub.read_retry(before));
  const uint64_t after = sub.read_begin();
  EXPECT_FALSE(sub.read_retry(after));
}

// An invalidation that does not overlap the interval leaves its sequence alone.
TEST(MmuNotifierTest, DisjointInvalidationDoesNotBumpSequence) {
  NotifierRegistry registry;
  auto sub = std::move(registry.subscribe(kLow, nullptr)).value();
  const uint64_t before = sub.read_begin();
  ASSERT_TRUE(registry.invalidate_range_start(change_of(kHigh)).ok());
  registry.invalidate_range_end(change_of(kHigh));
  EXPECT_FALSE(sub.read_retry(before));
  // [0x10000, ...) starts exactly at the interval's end: still disjoint.
  ASSERT_TRUE(registry.invalidate_range_start(change_of(IpaRange{Ipa(0x10000), 0x1000})).ok());
  registry.invalidate_range_end(change_of(IpaRange{Ipa(0x10000), 0x1000}));
  EXPECT_FALSE(sub.read_retry(before));
}

// Ops receive start and end with the change's range, reason and blockable flag; only
// overlapping subscribers are called.
TEST(MmuNotifierTest, OpsSeeTheChange) {
  NotifierRegistry registry;
  RecordingOps low_ops, high_ops;
  auto low = std::move(registry.subscribe(kLow, &low_ops)).value();
  auto high = std::move(registry.subscribe(kHigh, &high_ops)).value();
  const Change change = change_of(IpaRange{Ipa(0x2000), 0x1000}, /*blockable=*/false);
  ASSERT_TRUE(registry.invalidate_range_start(change).ok());
  registry.invalidate_range_end(change);
  EXPECT_EQ(low_ops.take(), (std::vector<std::string>{"start [0x2000, 0x3000) balloon atomic",
                                                      "end [0x2000, 0x3000)"}));
  EXPECT_TRUE(high_ops.take().empty());
  EXPECT_EQ(registry.stats().invalidations, 1u);
}

// Two overlapping invalidations: the sequence stays odd until the last one ends.
TEST(MmuNotifierTest, NestedInvalidationsKeepSequenceOdd) {
  NotifierRegistry registry;
  auto sub = std::move(registry.subscribe(kLow, nullptr)).value();
  const Change a = change_of(IpaRange{Ipa(0x0), 0x4000});
  const Change b = change_of(IpaRange{Ipa(0x2000), 0x4000});
  ASSERT_TRUE(registry.invalidate_range_start(a).ok());
  ASSERT_TRUE(registry.invalidate_range_start(b).ok());
  registry.invalidate_range_end(a);
  EXPECT_EQ(sub.sequence() % 2, 1u);
  registry.invalidate_range_end(b);
  EXPECT_EQ(sub.sequence() % 2, 0u);
}

// A subscriber refusing a non-blockable change aborts it: the error names the range, those
// that started get their end, later ones are not called, and the sequence ends even.
TEST(MmuNotifierTest, NonBlockableRefusalAbortsTheInvalidation) {
  NotifierRegistry registry;
  RecordingOps first, refusing, last;
  refusing.accept_start = false;
  auto a = std::move(registry.subscribe(kLow, &first)).value();
  auto b = std::move(registry.subscribe(kLow, &refusing)).value();
  auto c = std::move(registry.subscribe(kLow, &last)).value();
  const Change change = change_of(IpaRange{Ipa(0x1000), 0x1000}, /*blockable=*/false);
  auto started = registry.invalidate_range_start(change);
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.error().message.find("[0x1000, 0x2000)"), std::string::npos);
  EXPECT_EQ(first.take().size(), 2u);     // start and end
  EXPECT_EQ(refusing.take().size(), 1u);  // its refused start only
  EXPECT_TRUE(last.take().empty());
  EXPECT_EQ(a.sequence() % 2, 0u);
  EXPECT_EQ(registry.stats().failed_starts, 1u);
  // A blockable change cannot be refused.
  ASSERT_TRUE(registry.invalidate_range_start(change_of(kLow, true)).ok());
  registry.invalidate_range_end(change_of(kLow, true));
}

// Subscribing from inside a callback is deferred: the new subscription misses the running
// invalidation's end, reads as "in progress" until it finishes, and sees the next one.
TEST(MmuNotifierTest, SubscribeInsideCallbackIsDeferred) {
  NotifierRegistry registry;
  RecordingOps outer, inner;
  std::optional<IntervalSubscription> added;
  outer.on_start = [&] {
    if (!added)
      added = std::move(registry.subscribe(kLow, &inner)).value();
  };
  auto sub = std::move(registry.subscribe(kLow, &outer)).value();
  ASSERT_TRUE(registry.invalidate_range_start(change_of(kLow)).ok());
  ASSERT_TRUE(added.has_value());
  EXPECT_EQ(added->sequence() % 2, 1u);
  registry.invalidate_range_end(change_of(kLow));
  EXPECT_TRUE(inner.take().empty());
  EXPECT_EQ(added->sequence() % 2, 0u);
  EXPECT_EQ(registry.stats().deferred_changes, 1u);
  ASSERT_TRUE(registry.invalidate_range_start(change_of(kLow)).ok());
  registry.invalidate_range_end(change_of(kLow));
  EXPECT_EQ(inner.take().size(), 2u);
}

// Unsubscribing from inside one's own callback neither deadlocks nor delivers more ops.
TEST(MmuNotifierTest, UnsubscribeInsideOwnCallback) {
  NotifierRegistry registry;
  RecordingOps ops;
  std::optional<IntervalSubscription> sub;
  ops.on_start = [&] { sub->reset(); };
  sub = std::move(registry.subscribe(kLow, &ops)).value();
  ASSERT_TRUE(registry.invalidate_range_start(change_of(kLow)).ok());
  registry.invalidate_range_end(change_of(kLow));
  EXPECT_EQ(ops.take().size(), 1u);  // the start, no end
  EXPECT_EQ(registry.stats().subscriptions, 0u);
  ASSERT_TRUE(registry.invalidate_range_start(change_of(kLow)).ok());
  registry.invalidate_range_end(change_of(kLow));
  EXPECT_TRUE(ops.take().empty());
}

// Unsubscribing from another thread while a callback runs waits for the callback to return,
// so the ops object can be destroyed right after.
TEST(MmuNotifierTest, UnsubscribeFromOtherThreadWaitsForCallback) {
  NotifierRegistry registry;
  RecordingOps ops;
  std::promise<void> entered, proceed;
  std::shared_future<void> proceed_future = proceed.get_future().share();
  ops.on_start = [&] {
    entered.set_value();
    proceed_future.wait();
  };
  auto sub = std::move(registry.subscribe(kLow, &ops)).value();
  std::jthread invalidator([&] {
    ASSERT_TRUE(registry.invalidate_range_start(change_of(kLow)).ok());
    registry.invalidate_range_end(change_of(kLow));
  });
  entered.get_future().wait();
  std::atomic<bool> unsubscribed{false};
  std::jthread remover([&] {
    sub.reset();
    unsubscribed = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(unsubscribed.load()) << "unsubscribe returned while its callback was running";
  proceed.set_value();
  remover.join();
  invalidator.join();
  EXPECT_TRUE(unsubscribed.load());
  EXPECT_EQ(ops.take().size(), 1u);  // the end was not delivered after removal
}

// Unsubscribing from inside a callback while another thread runs a callback of the same
// subscription waits for that other callback (but not for its own).
TEST(MmuNotifierTest, UnsubscribeInsideCallbackWaitsForOtherThreads) {
  NotifierRegistry registry;
  RecordingOps ops;
  std::optional<IntervalSubscription> sub;
  std::atomic<int> entered{0};
  std::atomic<bool> other_done{false}, other_done_at_reset{false};
  ops.on_start = [&] {
    if (entered.fetch_add(1) == 0) {
      const auto give_up = std::chrono::steady_clock::now() + 2s;
      while (entered.load() < 2 && std::chrono::steady_clock::now() < give_up)
        std::this_thread::yield();
      sub->reset();
      other_done_at_reset = other_done.load();
    } else {
      std::this_thread::sleep_for(30ms);
      other_done = true;
    }
  };
  sub = std::move(registry.subscribe(kLow, &ops)).value();
  {
    std::vector<std::jthread> invalidators;
    for (int i = 0; i < 2; ++i) {
      invalidators.emplace_back([&] {
        ASSERT_TRUE(registry.invalidate_range_start(change_of(kLow)).ok());
        registry.invalidate_range_end(change_of(kLow));
      });
    }
  }
  ASSERT_EQ(entered.load(), 2) << "the two callbacks never overlapped";
  EXPECT_TRUE(other_done_at_reset.load()) << "reset() returned while another callback ran";
}

// read_begin waits while an overlapping invalidation is in progress on another thread.
TEST(MmuNotifierTest, ReadBeginWaitsForInvalidationEnd) {
  NotifierRegistry registry;
  auto sub = std::move(registry.subscribe(kLow, nullptr)).value();
  ASSERT_TRUE(registry.invalidate_range_start(change_of(kLow)).ok());
  std::atomic<bool> began{false};
  uint64_t sequence = 1;
  std::jthread reader([&] {
    sequence = sub.read_begin();
    began = true;
  });
  std::this_thread::sleep_for(30ms);
  EXPECT_FALSE(began.load());
  registry.invalidate_range_end(change_of(kLow));
  reader.join();
  EXPECT_TRUE(began.load());
  EXPECT_EQ(sequence % 2, 0u);
}

// Young ops reach every overlapping subscriber (no short cut) and report whether any was young.
TEST(MmuNotifierTest, YoungOpsAskEveryone) {
  NotifierRegistry registry;
  RecordingOps hot, cold, elsewhere;
  hot.young = true;
  auto a = std::move(registry.subscribe(kLow, &hot)).value();
  auto b = std::move(registry.subscribe(kLow, &cold)).value();
  auto c = std::move(registry.subscribe(kHigh, &elsewhere)).value();
  EXPECT_TRUE(registry.test_young(kLow));
  EXPECT_TRUE(registry.clear_young(kLow));
  EXPECT_FALSE(registry.test_young(kLow));
  EXPECT_FALSE(registry.clear_young(kLow));
  EXPECT_EQ(hot.take().size(), 4u);
  EXPECT_EQ(cold.take().size(), 4u);
  EXPECT_TRUE(elsewhere.take().empty());
}

// release() tells every subscriber once, makes readers retry, and refuses new subscriptions.
TEST(MmuNotifierTest, ReleaseEndsTheAddressSpace) {
  NotifierRegistry registry;
  RecordingOps ops;
  auto sub = std::move(registry.subscribe(kHigh, &ops)).value();
  const uint64_t before = sub.read_begin();
  registry.release();
  registry.release();
  EXPECT_EQ(ops.take(), std::vector<std::string>{"release"});
  EXPECT_TRUE(sub.read_retry(before));
  auto late = registry.subscribe(kLow, nullptr);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, ErrorCode::kFailedPrecondition);
}

// A subscription that outlives its registry is inert and destroys cleanly.
TEST(MmuNotifierTest, SubscriptionOutlivingRegistry) {
  std::optional<IntervalSubscription> sub;
  {
    NotifierRegistry registry;
    sub = std::move(registry.subscribe(kLow, nullptr)).value();
  }
  EXPECT_TRUE(sub->subscribed());
  sub->reset();
  EXPECT_FALSE(sub->subscribed());
}

// Through NotifierHooks, a Stage2Map's map and unmap drive start/end with their reasons, and
// the young helpers combine the map's access flags with the subscribers' answers.
TEST(MmuNotifierTest, HooksFollowTheMap) {
  HeapTableAllocator tables;
  auto space = IpaSpace::create(32);
  ASSERT_TRUE(space.ok());
  auto map = std::move(Stage2Map::create(*space, tables)).value();
  NotifierRegistry registry;
  NotifierHooks hooks(registry);
  map.add_hooks(hooks);
  RecordingOps ops;
  auto sub = std::move(registry.subscribe(kLow, &ops)).value();
  ASSERT_TRUE(map.map(IpaRange{Ipa(0x1000), 0x2000}, HostOffset(0x1000), kRamAttributes).ok());
  ASSERT_TRUE(map.unmap(IpaRange{Ipa(0x2000), 0x1000}, ChangeReason::kBalloon).ok());
  ASSERT_TRUE(map.map(IpaRange{Ipa(0x200000), 0x1000}, HostOffset(0x5000), kRamAttributes).ok());
  EXPECT_EQ(ops.take(), (std::vector<std::string>{
                            "start [0x1000, 0x3000) map blockable", "end [0x1000, 0x3000)",
                            "start [0x2000, 0x3000) balloon blockable", "end [0x2000, 0x3000)"}));
  EXPECT_EQ(sub.sequence() % 2, 0u);
  // The page was mapped young: the combined helper clears the map's flag and asks ops.
  EXPECT_TRUE(test_young(map, registry, kLow));
  EXPECT_TRUE(clear_young(map, registry, kLow));
  EXPECT_FALSE(test_young(map, registry, kLow));
  ops.young = true;
  EXPECT_TRUE(test_young(map, registry, kLow));
  map.remove_hooks(hooks);
}

// Through NotifierHooks, a subscriber refusing a non-blockable page-state change stops the
// map from committing it: the page stays resident, every sequence is even again, the refusal
// is counted and reported as retryable, and the same change made blockable goes through.
TEST(MmuNotifierTest, RefusalThroughHooksLeavesTheMapUnchanged) {
  HeapTableAllocator tables;
  auto map = std::move(Stage2Map::create(IpaSpace::create(32).value(), tables)).value();
  ASSERT_TRUE(map.map(kLow, HostOffset(0), kRamAttributes).ok());
  NotifierRegistry registry;
  NotifierHooks hooks(registry);
  map.add_hooks(hooks);
  RecordingOps watcher, refusing;
  refusing.accept_start = false;
  auto a = std::move(registry.subscribe(kLow, &watcher)).value();
  auto b = std::move(registry.subscribe(kLow, &refusing)).value();
  const PageStateUpdate report{.set_backing = true, .backing = Backing::kReported};
  const IpaRange page{Ipa(0x3000), 0x1000};
  const std::string before = map.dump();
  auto refused = map.set_page_state(page, report, ChangeReason::kFreePageReport, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(refused.error().message.find("retry"), std::string::npos) << refused.error().message;
  EXPECT_EQ(map.dump(), before);
  EXPECT_EQ(a.sequence() % 2, 0u);
  EXPECT_EQ(b.sequence() % 2, 0u);
  EXPECT_EQ(registry.stats().failed_starts, 1u);
  EXPECT_EQ(watcher.take(),
            (std::vector<std::string>{"start [0x3000, 0x4000) free-page-report atomic",
                                      "end [0x3000, 0x4000)"}));
  EXPECT_EQ(refusing.take().size(), 1u);  // its refused start, no end
  ASSERT_TRUE(map.set_page_state(page, report, ChangeReason::kFreePageReport, true).ok());
  EXPECT_EQ(map.translate(page.start)->state.backing, Backing::kReported);
  EXPECT_EQ(a.sequence() % 2, 0u);
  map.remove_hooks(hooks);
}

// A TLB subscribed through TlbNotifierOps loses the entries of an invalidation that did not
// come from the map (a memslot change), for its VMID only, and a fill guarded by a read_begin
// taken before that invalidation is refused.
TEST(MmuNotifierTest, TlbAsSubscriberDropsInvalidatedRange) {
  NotifierRegistry registry;
  Stage2Tlb tlb(64);
  TlbNotifierOps tlb_ops(tlb, 3);
  auto sub = std::move(registry.subscribe(IpaRange{Ipa(0), uint64_t{1} << 32}, &tlb_ops)).value();
  alignas(kPageSize) static std::byte page[kPageSize];
  ASSERT_TRUE(tlb.fill(3, Ipa(0x4000), page, Access::kRead));
  ASSERT_TRUE(tlb.fill(3, Ipa(0x9000), page, Access::kRead));
  ASSERT_TRUE(tlb.fill(4, Ipa(0x4000), page, Access::kRead));
  const uint64_t sequence = sub.read_begin();
  const Change memslot{IpaRange{Ipa(0x4000), 0x1000}, ChangeKind::kUnmap, ChangeReason::kMemslot,
                       /*blockable=*/false};
  ASSERT_TRUE(registry.invalidate_range_start(memslot).ok());
  EXPECT_EQ(tlb.lookup(3, Ipa(0x4000), Access::kRead), nullptr);
  EXPECT_NE(tlb.lookup(3, Ipa(0x9000), Access::kRead), nullptr);
  EXPECT_NE(tlb.lookup(4, Ipa(0x4000), Access::kRead), nullptr);
  registry.invalidate_range_end(memslot);
  EXPECT_FALSE(
      tlb.fill(3, Ipa(0x4000), page, Access::kRead, [&] { return !sub.read_retry(sequence); }));
}

}  // namespace
}  // namespace hvmm::stage2
