// Tests of the reclaim engine's controls with the engine's fakes (reclaim_test_support.h):
// a policy set between epochs takes effect at the next epoch and keeps the page ages (a
// lowered cold threshold makes already idle pages candidates at once, a raised one makes
// them wait), a bad policy is refused and changes nothing, a new refault distance applies
// to the next refaults, a harvest between epochs makes pages young and is published with
// the epochs' own, and set_policy races epochs on the service thread safely.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "reclaim_test_support.h"

namespace hvmm::vmm {
namespace {

using testing::EngineRig;
using testing::page_ipa;
using testing::page_run;
using testing::test_policy;

const std::vector<uint64_t> kFour = {0, 1, 2, 3};

// Lowered from 5 to 2 after two epochs: the pages, two epochs idle, go at the next epoch
// (their ages were kept), and policy() says 5 until that epoch begins.
TEST(ReclaimEngineControls, LowerColdThresholdAppliesToKeptAges) {
  EngineRig rig;
  rig.make_engine(test_policy(5));
  rig.touch(0, 4);
  rig.epoch();  // epoch 0: first seen
  rig.epoch();  // epoch 1
  EXPECT_TRUE(rig.reclaimer->take_pages().empty());
  ASSERT_TRUE(rig.engine->set_policy(test_policy(2)).ok());
  EXPECT_EQ(rig.engine->policy().cold_epochs, 5u) << "in force before the next epoch";
  rig.epoch();  // epoch 2: the pages are 2 epochs idle
  EXPECT_EQ(rig.engine->policy().cold_epochs, 2u);
  EXPECT_EQ(rig.reclaimer->take_pages(), kFour);
}

// Raised from 2 to 4 after one epoch: nothing goes at epochs 2 and 3, everything at 4.
TEST(ReclaimEngineControls, RaisedColdThresholdMakesPagesWait) {
  EngineRig rig;
  rig.make_engine(test_policy(2));
  rig.touch(0, 4);
  rig.epoch();  // epoch 0
  ASSERT_TRUE(rig.engine->set_policy(test_policy(4)).ok());
  for (int epoch = 1; epoch < 4; ++epoch) {
    rig.epoch();
    EXPECT_TRUE(rig.reclaimer->take_pages().empty()) << "epoch " << epoch;
  }
  rig.epoch();  // epoch 4
  EXPECT_EQ(rig.reclaimer->take_pages(), kFour);
}

// A policy the epoch cannot run with is refused and the one in force stays, at the next
// epoch too.
TEST(ReclaimEngineControls, BadPolicyChangesNothing) {
  EngineRig rig;
  rig.make_engine(test_policy(3));
  ReclaimPolicy bad = test_policy(0);
  auto refused = rig.engine->set_policy(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message.find("cold=0"), std::string::npos) << refused.error().message;
  bad = test_policy(3);
  bad.period = std::chrono::milliseconds(0);
  EXPECT_FALSE(rig.engine->set_policy(bad).ok());
  rig.epoch();
  EXPECT_EQ(rig.engine->policy().cold_epochs, 3u);
  EXPECT_EQ(rig.engine->policy().period, std::chrono::milliseconds(1000));
}

// The refault distance of the policy in force decides activation: a refault 2 epochs after
// the reclaim is not within a distance of 1, and is within 3 once that policy applies.
TEST(ReclaimEngineControls, NewRefaultDistanceAppliesToLaterRefaults) {
  EngineRig rig;
  ReclaimPolicy policy = test_policy(1);
  policy.refault_distance = 1;
  rig.make_engine(policy);
  rig.touch(0, 2);
  rig.epoch();  // epoch 0: seen
  rig.epoch();  // epoch 1: pages 0-1 reclaimed
  ASSERT_EQ(rig.reclaimer->take_pages(), (std::vector<uint64_t>{0, 1}));
  rig.epoch();     // epoch 2
  rig.refault(0);  // 2 epochs after its reclaim: beyond 1
  EXPECT_EQ(rig.engine->stats().refaults_activated, 0u);
  policy.refault_distance = 3;
  ASSERT_TRUE(rig.engine->set_policy(policy).ok());
  rig.epoch();     // epoch 3: the new distance in force
  rig.refault(1);  // 3 epochs after its reclaim: within 3
  EXPECT_EQ(rig.engine->stats().refaults_activated, 1u);
}

// harvest_now() between epochs makes the reported pages young in the current epoch (idle 0)
// and publishes them; the next epoch's harvest publishes its own, and a page written in
// neither is not published.
TEST(ReclaimEngineControls, HarvestBetweenEpochsIsPublished) {
  EngineRig rig;
  DirtyAccumulator published(rig.memory->ram(), rig.memory->memory_size());
  rig.published = &published;
  rig.make_engine(test_policy(3));
  rig.touch(0, 8);
  rig.epoch();
  rig.epoch();
  EXPECT_EQ(rig.engine->idle_epochs(page_ipa(2)), 2u);
  rig.dirty.next = {IpaRange{page_ipa(2), 2 * kPageSize}};
  auto harvested = rig.engine->harvest_now();
  ASSERT_TRUE(harvested.ok()) << harvested.error().message;
  EXPECT_EQ(*harvested, 2u);
  EXPECT_EQ(rig.engine->idle_epochs(page_ipa(2)), 0u);
  EXPECT_EQ(rig.engine->idle_epochs(page_ipa(4)), 2u);
  rig.dirty.next = {page_run(6)};
  rig.epoch();
  const DirtyRuns taken = published.take(IpaRange{Ipa(0), rig.memory->memory_size()});
  EXPECT_EQ(taken.runs, (std::vector<IpaRange>{IpaRange{page_ipa(2), 2 * kPageSize}, page_run(6)}));
  EXPECT_EQ(taken.pages, 3u);
  EXPECT_EQ(rig.engine->stats().epochs, 3u) << "harvest_now is not an epoch";
}

// Without a DirtySource harvest_now() reports nothing and succeeds.
TEST(ReclaimEngineControls, HarvestWithoutSourceIsEmpty) {
  EngineRig rig;
  rig.make_engine(test_policy(3), /*with_dirty=*/false);
  auto harvested = rig.engine->harvest_now();
  ASSERT_TRUE(harvested.ok());
  EXPECT_EQ(*harvested, 0u);
}

// Policies set from one thread while the service thread runs 1 ms epochs and another reads
// policy(): each reading is one of the policies set, and the last set is in force after the
// next epoch.
TEST(ReclaimEngineControls, SetPolicyRacesTheServiceThread) {
  EngineRig rig;
  ReclaimPolicy fast = test_policy(2);
  fast.period = std::chrono::milliseconds(1);
  rig.make_engine(fast);
  ASSERT_TRUE(rig.engine->start().ok());
  std::atomic<bool> done{false};
  std::atomic<uint64_t> odd_readings{0};
  std::thread reader([&] {
    while (!done) {
      const uint32_t cold = rig.engine->policy().cold_epochs;
      odd_readings += (cold >= 2 && cold <= 9) ? 0 : 1;
    }
  });
  for (uint32_t i = 0; i < 2000; ++i) {
    ReclaimPolicy next = test_policy(2 + i % 8);
    next.period = std::chrono::milliseconds(1);
    ASSERT_TRUE(rig.engine->set_policy(next).ok());
  }
  done = true;
  reader.join();
  rig.engine->stop();
  auto epoch = rig.engine->run_epoch();
  ASSERT_TRUE(epoch.ok());
  EXPECT_EQ(rig.engine->policy().cold_epochs, 2u + 1999 % 8);
  EXPECT_EQ(odd_readings.load(), 0u);
}

}  // namespace
}  // namespace hvmm::vmm
