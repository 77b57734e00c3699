// Tests of the generation-based ASID (PCID) allocator.
#include "hvmm/guest/mm/asid.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <set>
#include <vector>

namespace hvmm::guest::mm {
namespace {

// Switching back to a context of the current generation keeps its ASID without a flush.
TEST(Asid, StableWithinGeneration) {
  auto asids = std::make_unique<AsidAllocator>();
  ASSERT_TRUE(asids->init(12));
  AsidContext a;
  AsidContext b;
  const AsidSwitch first = asids->switch_to(a, 0);
  EXPECT_NE(first.asid, 0u);
  EXPECT_FALSE(first.need_flush);
  const AsidSwitch other = asids->switch_to(b, 0);
  EXPECT_NE(other.asid, first.asid);
  const AsidSwitch again = asids->switch_to(a, 0);
  EXPECT_EQ(again.asid, first.asid);
  EXPECT_FALSE(again.need_flush);
  EXPECT_EQ(asids->stats().fast_switches, 1u);
  EXPECT_EQ(asids->stats().rollovers, 0u);
}

// Running out of ASIDs starts a new generation: every CPU flushes once, live ones survive.
TEST(Asid, RolloverFlushesEachCpuOnceAndKeepsLiveAsids) {
  auto asids = std::make_unique<AsidAllocator>();
  ASSERT_TRUE(asids->init(3));  // ASIDs 1..7
  std::vector<AsidContext> contexts(9);
  const AsidSwitch on_cpu1 = asids->switch_to(contexts[0], 1);
  for (int i = 1; i <= 7; ++i) {
    asids->switch_to(contexts[i], 0);  // i == 7 needs an eighth ASID: rollover
  }
  EXPECT_EQ(asids->stats().rollovers, 1u);
  // CPU 1 still runs contexts[0]: its ASID was reserved and is kept, with one flush.
  const AsidSwitch back = asids->switch_to(contexts[0], 1);
  EXPECT_EQ(back.asid, on_cpu1.asid);
  EXPECT_TRUE(back.need_flush);
  EXPECT_FALSE(asids->switch_to(contexts[0], 1).need_flush);
  // CPU 0 already flushed when it switched to contexts[7] after the rollover.
  EXPECT_FALSE(asids->switch_to(contexts[8], 0).need_flush);
}

// Random switches on 4 CPUs: contexts running at the same time never share an ASID, and
// a context keeps its ASID between switches unless a rollover happened in between.
TEST(Asid, RandomizedNoSharingAmongRunning) {
  auto asids = std::make_unique<AsidAllocator>();
  ASSERT_TRUE(asids->init(4));  // 15 ASIDs for 40 contexts: frequent rollovers
  constexpr unsigned kCpus = 4;
  std::vector<AsidContext> contexts(40);
  std::vector<int> running(kCpus, -1);
  std::vector<uint16_t> running_asid(kCpus, 0);
  std::vector<uint16_t> last_asid(contexts.size(), 0);
  std::vector<uint64_t> last_rollovers(contexts.size(), 0);
  std::mt19937_64 rng(9);
  for (int step = 0; step < 20000; ++step) {
    const unsigned cpu = static_cast<unsigned>(rng() % kCpus);
    const auto ctx = static_cast<int>(rng() % contexts.size());
    bool elsewhere = false;
    for (unsigned c = 0; c < kCpus; ++c) {
      elsewhere = elsewhere || (c != cpu && running[c] == ctx);
    }
    const AsidSwitch s = asids->switch_to(contexts[ctx], cpu);
    ASSERT_NE(s.asid, 0u);
    if (elsewhere) {
      // Running on two CPUs (threads of one process) must use one ASID.
      for (unsigned c = 0; c < kCpus; ++c) {
        if (c != cpu && running[c] == ctx) {
          ASSERT_EQ(running_asid[c], s.asid) << "step " << step;
        }
      }
    }
    running[cpu] = ctx;
    running_asid[cpu] = s.asid;
    for (unsigned c = 0; c < kCpus; ++c) {
      if (c != cpu && running[c] != ctx && running[c] >= 0) {
        // After a rollover CPU c may still hold its old id; it is reserved, so distinct.
        ASSERT_NE(running_asid[c], s.asid) << "step " << step << " cpu " << c;
      }
    }
    if (last_asid[ctx] != 0 && last_rollovers[ctx] == asids->stats().rollovers) {
      ASSERT_EQ(s.asid, last_asid[ctx]) << "step " << step;
    }
    last_asid[ctx] = s.asid;
    last_rollovers[ctx] = asids->stats().rollovers;
  }
  EXPECT_GT(asids->stats().rollovers, 10u);
}

}  // namespace
}  // namespace hvmm::guest::mm
