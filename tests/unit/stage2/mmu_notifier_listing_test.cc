// NotifierRegistry's listing: owner names, per-subscription counts of overlapping
// invalidations (against a model), deferred changes in the snapshot, and the invalidation
// numbers both phases of an invalidation read back.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hvmm/stage2/mmu_notifier.h"

namespace hvmm::stage2 {
namespace {

constexpr uint64_t kSpace = uint64_t{1} << 24;  // 16 MiB of IPA space for the random tests

Change change_of(IpaRange range) {
  return Change{range, ChangeKind::kUnmap, ChangeReason::kBalloon, true};
}

// Records the invalidation number each phase reads back, keyed by the change's range.
class NumberingOps : public IntervalOps {
 public:
  explicit NumberingOps(const NotifierRegistry& registry) : registry_(registry) {}
  bool invalidate_range_start(const Change& change) override {
    std::lock_guard lock(mutex_);
    starts.push_back(registry_.invalidation_number(change));
    return true;
  }
  void invalidate_range_end(const Change& change) override {
    std::lock_guard lock(mutex_);
    ends.push_back(registry_.invalidation_number(change));
  }
  std::vector<uint64_t> starts;
  std::vector<uint64_t> ends;

 private:
  const NotifierRegistry& registry_;
  std::mutex mutex_;
};

// A random page-aligned, non-empty range inside kSpace.
IpaRange random_range(std::mt19937_64& random) {
  const uint64_t pages = kSpace / kPageSize;
  const uint64_t first = random() % pages;
  const uint64_t count = 1 + random() % std::min<uint64_t>(pages - first, 256);
  return IpaRange{Ipa(first * kPageSize), count * kPageSize};
}

// Owners, intervals and ids are listed in subscription order; an unnamed one has "".
TEST(MmuNotifierListing, ListsOwnersInSubscriptionOrder) {
  NotifierRegistry registry;
  auto a = std::move(registry.subscribe(IpaRange{Ipa(0), 0x1000}, nullptr, "translator")).value();
  auto b = std::move(registry.subscribe(IpaRange{Ipa(0x4000), 0x2000}, nullptr, "watch")).value();
  auto c = std::move(registry.subscribe(IpaRange{Ipa(0x8000), 0x1000}, nullptr)).value();
  const auto listed = registry.list();
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(listed[0].owner, "translator");
  EXPECT_EQ(listed[1].owner, "watch");
  EXPECT_EQ(listed[2].owner, "");
  EXPECT_EQ(listed[0].id, a.id());
  EXPECT_EQ(listed[1].id, b.id());
  EXPECT_EQ(listed[2].id, c.id());
  EXPECT_LT(listed[0].id, listed[1].id);
  EXPECT_LT(listed[1].id, listed[2].id);
  EXPECT_EQ(listed[1].interval, (IpaRange{Ipa(0x4000), 0x2000}));
  b.reset();
  const auto after = registry.list();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[1].owner, "");
}

// Random invalidations against a model: each subscription's count is the number of
// invalidations whose range overlapped its interval, and the registry's total is all of them.
TEST(MmuNotifierListing, InvalidationCountsMatchAModel) {
  std::mt19937_64 random(42);
  NotifierRegistry registry;
  std::vector<IntervalSubscription> subscriptions;
  std::map<uint64_t, std::pair<IpaRange, uint64_t>> model;  // id -> interval, count
  for (int i = 0; i < 12; ++i) {
    const IpaRange interval = random_range(random);
    auto sub = registry.subscribe(interval, nullptr, fmt::format("sub{}", i));
    ASSERT_TRUE(sub.ok());
    model[sub->id()] = {interval, 0};
    subscriptions.push_back(std::move(*sub));
  }
  for (int i = 0; i < 2000; ++i) {
    const Change change = change_of(random_range(random));
    ASSERT_TRUE(registry.invalidate_range_start(change).ok());
    registry.invalidate_range_end(change);
    for (auto& [id, entry] : model) {
      if (entry.first.overlaps(change.range))
        ++entry.second;
    }
    if (i % 500 == 0) {  // drop one subscription now and then: it leaves the listing
      const size_t victim = random() % subscriptions.size();
      model.erase(subscriptions[victim].id());
      subscriptions.erase(subscriptions.begin() + static_cast<ptrdiff_t>(victim));
    }
  }
  const auto listed = registry.list();
  ASSERT_EQ(listed.size(), model.size());
  for (const SubscriptionInfo& info : listed) {
    auto it = model.find(info.id);
    ASSERT_NE(it, model.end()) << info.id;
    EXPECT_EQ(info.interval, it->second.first);
    EXPECT_EQ(info.invalidations_seen, it->second.second) << info.owner;
    EXPECT_EQ(info.sequence % 2, 0u) << "no invalidation is running";
  }
  EXPECT_EQ(registry.stats().invalidations, 2000u);
}

// A subscription made inside a callback is listed at once, with an odd sequence until the
// running invalidation ends; one removed inside a callback is no longer listed.
TEST(MmuNotifierListing, DeferredChangesAreInTheSnapshot) {
  NotifierRegistry registry;
  std::optional<IntervalSubscription> added;
  std::vector<SubscriptionInfo> during;
  struct Ops : IntervalOps {
    std::function<void()> on_start;
    bool invalidate_range_start(const Change&) override {
      on_start();
      return true;
    }
  } ops;
  auto doomed =
      std::move(registry.subscribe(IpaRange{Ipa(0x10000), 0x1000}, nullptr, "doomed")).value();
  ops.on_start = [&] {
    added = std::move(registry.subscribe(IpaRange{Ipa(0), 0x1000}, nullptr, "late")).value();
    doomed.reset();
    during = registry.list();
  };
  auto host = std::move(registry.subscribe(IpaRange{Ipa(0), 0x100000}, &ops, "host")).value();
  const Change change = change_of(IpaRange{Ipa(0), 0x1000});
  ASSERT_TRUE(registry.invalidate_range_start(change).ok());
  registry.invalidate_range_end(change);
  ASSERT_EQ(during.size(), 2u);
  EXPECT_EQ(during[0].owner, "host");
  EXPECT_EQ(during[1].owner, "late");
  EXPECT_EQ(during[1].sequence % 2, 1u) << "a deferred subscription starts odd";
  const auto after = registry.list();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[1].sequence % 2, 0u);
  EXPECT_EQ(after[1].invalidations_seen, 0u) << "it did not see the invalidation start";
  EXPECT_EQ(after[0].invalidations_seen, 1u);
}

// Both phases of an invalidation read the same number, numbers count from 1 in start order,
// and outside an invalidation (or for a refused one, after it) the number is 0.
TEST(MmuNotifierListing, BothPhasesReadTheSameNumber) {
  NotifierRegistry registry;
  NumberingOps ops(registry);
  auto sub = std::move(registry.subscribe(IpaRange{Ipa(0), kSpace}, &ops, "numbers")).value();
  const Change a = change_of(IpaRange{Ipa(0), 0x1000});
  const Change b = change_of(IpaRange{Ipa(0x1000), 0x1000});
  EXPECT_EQ(registry.invalidation_number(a), 0u);
  ASSERT_TRUE(registry.invalidate_range_start(a).ok());
  ASSERT_TRUE(registry.invalidate_range_start(b).ok());  // nested, ends first
  EXPECT_EQ(registry.invalidation_number(a), 1u);
  EXPECT_EQ(registry.invalidation_number(b), 2u);
  registry.invalidate_range_end(b);
  registry.invalidate_range_end(a);
  EXPECT_EQ(registry.invalidation_number(a), 0u);
  EXPECT_EQ(ops.starts, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(ops.ends, (std::vector<uint64_t>{2, 1}));
}

// Invalidations from several threads at once: every start has a unique number, and its end
// reads the same one.
TEST(MmuNotifierListing, ConcurrentInvalidationsPairTheirNumbers) {
  NotifierRegistry registry;
  std::mutex mutex;
  std::map<uint64_t, int> phases;  // number -> starts + ends seen
  struct Ops : IntervalOps {
    NotifierRegistry* registry = nullptr;
    std::function<void(uint64_t)> seen;
    bool invalidate_range_start(const Change& change) override {
      seen(registry->invalidation_number(change));
      return true;
    }
    void invalidate_range_end(const Change& change) override {
      seen(registry->invalidation_number(change));
    }
  } ops;
  ops.registry = &registry;
  ops.seen = [&](uint64_t number) {
    std::lock_guard lock(mutex);
    ++phases[number];
  };
  auto sub = std::move(registry.subscribe(IpaRange{Ipa(0), kSpace}, &ops, "numbers")).value();
  constexpr int kThreads = 4;
  constexpr int kEach = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&registry, t] {
      for (int i = 0; i < kEach; ++i) {
        const Change change = change_of(IpaRange{Ipa(uint64_t(t) * 0x10000), 0x1000});
        if (registry.invalidate_range_start(change).ok())
          registry.invalidate_range_end(change);
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  ASSERT_EQ(phases.size(), size_t{kThreads * kEach});
  EXPECT_EQ(phases.begin()->first, 1u);
  EXPECT_EQ(phases.rbegin()->first, uint64_t{kThreads * kEach});
  for (const auto& [number, count] : phases)
    EXPECT_EQ(count, 2) << "invalidation " << number;
  EXPECT_EQ(registry.list().front().invalidations_seen, uint64_t{kThreads * kEach});
}

}  // namespace
}  // namespace hvmm::stage2
