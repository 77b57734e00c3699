// NotifierWatch on a real NotifierRegistry: it subscribes only while forwarding (owner
// "watch"), forwards exactly the invalidations overlapping its filters (against a model),
// pairs START and END by the registry's number, counts what the sink refused, never refuses
// a change, and rejects bad filters without changing anything.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "hvmm/daemon/vmproc/notifier_watch.h"

namespace hvmm::daemon::vmproc {
namespace {

constexpr IpaRange kSpace{Ipa(0), uint64_t{1} << 30};

stage2::Change change_of(IpaRange range, bool blockable = true) {
  return stage2::Change{range, stage2::ChangeKind::kPageState, stage2::ChangeReason::kBalloon,
                        blockable};
}

// A registry, a watch over it, and the events its sink received (it refuses when `full`).
struct WatchFixture : ::testing::Test {
  stage2::NotifierRegistry registry;
  std::vector<hvmm::v1::NotifierEvent> events;
  bool full = false;
  NotifierWatch watch{registry, kSpace, [this](hvmm::v1::NotifierEvent event) {
                        if (full) {
                          return false;
                        }
                        events.push_back(std::move(event));
                        return true;
                      }};

  void invalidate(IpaRange range, bool blockable = true) {
    const stage2::Change change = change_of(range, blockable);
    ASSERT_TRUE(registry.invalidate_range_start(change).ok());
    registry.invalidate_range_end(change);
  }
};

// No subscription until forwarding starts, one named "watch" while on, none after stop.
TEST_F(WatchFixture, SubscribesOnlyWhileForwarding) {
  EXPECT_TRUE(registry.list().empty());
  invalidate(IpaRange{Ipa(0), 0x1000});
  EXPECT_TRUE(events.empty());
  ASSERT_TRUE(watch.forward_all().ok());
  ASSERT_EQ(registry.list().size(), 1u);
  EXPECT_EQ(registry.list()[0].owner, "watch");
  EXPECT_EQ(registry.list()[0].interval, kSpace);
  EXPECT_EQ(watch.subscription_id(), registry.list()[0].id);
  ASSERT_TRUE(watch.forward({}).ok());  // an empty list stops
  EXPECT_TRUE(registry.list().empty());
  EXPECT_FALSE(watch.forwarding());
}

// Random filters and invalidations: an invalidation is forwarded (as START then END with the
// same sequence, its range and reason) exactly when it overlaps a filter.
TEST_F(WatchFixture, ForwardsExactlyTheOverlappingOnes) {
  std::mt19937_64 random(11);
  auto random_range = [&random] {
    const uint64_t page = random() % (kSpace.size / kPageSize - 64);
    return IpaRange{Ipa(page * kPageSize), (1 + random() % 64) * kPageSize};
  };
  for (int round = 0; round < 20; ++round) {
    std::vector<IpaRange> filters;
    for (uint64_t n = 1 + random() % 4; n > 0; --n) {
      filters.push_back(random_range());
    }
    ASSERT_TRUE(watch.forward(filters).ok());
    events.clear();
    std::vector<IpaRange> expected;
    for (int i = 0; i < 200; ++i) {
      const IpaRange range = random_range();
      invalidate(range, i % 2 == 0);
      for (const IpaRange& filter : filters) {
        if (filter.overlaps(range)) {
          expected.push_back(range);
          break;
        }
      }
    }
    ASSERT_EQ(events.size(), expected.size() * 2);
    for (size_t i = 0; i < expected.size(); ++i) {
      const auto& start = events[2 * i];
      const auto& end = events[2 * i + 1];
      EXPECT_EQ(start.phase(), hvmm::v1::NOTIFIER_PHASE_START);
      EXPECT_EQ(end.phase(), hvmm::v1::NOTIFIER_PHASE_END);
      EXPECT_EQ(start.sequence(), end.sequence());
      EXPECT_GT(start.sequence(), 0u);
      EXPECT_EQ(start.range().start(), expected[i].start.value());
      EXPECT_EQ(start.range().size(), expected[i].size);
      EXPECT_EQ(start.reason(), hvmm::v1::CHANGE_REASON_BALLOON);
      EXPECT_GT(start.time_unix_ns(), 0u);
    }
  }
}

// A sink that refuses: the change still goes through (the watch never refuses, even a
// non-blockable one), and the refusal is counted as an overflow.
TEST_F(WatchFixture, RefusedEventsAreOverflowsNotRefusals) {
  ASSERT_TRUE(watch.forward_all().ok());
  invalidate(IpaRange{Ipa(0), 0x1000});
  full = true;
  invalidate(IpaRange{Ipa(0), 0x1000}, /*blockable=*/false);
  EXPECT_EQ(watch.events_sent(), 2u);
  EXPECT_EQ(watch.overflows(), 2u);
  EXPECT_EQ(registry.stats().failed_starts, 0u);
}

// Bad filters are refused naming the index, and the previous filters stay.
TEST_F(WatchFixture, BadFiltersChangeNothing) {
  const IpaRange good[] = {IpaRange{Ipa(0x1000), 0x1000}};
  ASSERT_TRUE(watch.forward(good).ok());
  const IpaRange bad[] = {IpaRange{Ipa(0), 0x1000}, IpaRange{Ipa(kSpace.size), 0x1000}};
  auto refused = watch.forward(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message.rfind("filters[1]:", 0), 0u) << refused.error().message;
  const IpaRange empty[] = {IpaRange{Ipa(0), 0}};
  EXPECT_FALSE(watch.forward(empty).ok());
  invalidate(IpaRange{Ipa(0), 0x1000});
  EXPECT_TRUE(events.empty()) << "the old filter [0x1000, 0x2000) still applies";
  invalidate(IpaRange{Ipa(0x1000), 0x1000});
  EXPECT_EQ(events.size(), 2u);
}

}  // namespace
}  // namespace hvmm::daemon::vmproc
