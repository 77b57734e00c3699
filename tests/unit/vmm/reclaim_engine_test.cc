// Tests of the reclaim engine's decisions with a fake reclaimer and dirty source over a real
// memfd: the refault distance (a hot page is not reclaimed twice in a row), the goal, the
// rate limit, the promotion budget, the pages that wait (incompressible, full, skipped), and
// errors.
#include <gtest/gtest.h>

#include <algorithm>

#include "reclaim_test_support.h"

namespace hvmm::vmm {
namespace {

using testing::EngineRig;
using testing::page_ipa;
using testing::page_run;
using testing::test_policy;

// Whether `page` is among `pages`.
bool contains(const std::vector<uint64_t>& pages, uint64_t page) {
  return std::find(pages.begin(), pages.end(), page) != pages.end();
}

// A HOT PAGE IS NOT RECLAIMED TWICE IN A ROW: page 0, refaulted one epoch after its reclaim
// (within the distance of 3), is not handed over again while its cold neighbours are, until
// it has been idle for the active period; page 1, refaulted 4 epochs after its reclaim
// (beyond the distance), is not activated and goes again as soon as it is cold.
TEST(ReclaimEngineTest, RefaultWithinDistanceActivatesThePage) {
  EngineRig rig;
  ReclaimPolicy policy = test_policy(2);
  policy.refault_distance = 3;
  policy.active_epochs = 10;
  rig.make_engine(policy);
  rig.touch(0, 2);
  rig.epoch();  // epoch 0: pages 0-1 first seen
  rig.touch(2, 2);
  rig.epoch();  // epoch 1: pages 2-3 first seen
  EXPECT_EQ(rig.reclaimer->take_pages(), (std::vector<uint64_t>{}));
  rig.epoch();  // epoch 2: pages 0-1 are 2 epochs idle
  EXPECT_EQ(rig.reclaimer->take_pages(), (std::vector<uint64_t>{0, 1}));

  rig.refault(0);  // in epoch 3, one epoch after its reclaim: active
  rig.epoch();     // epoch 3: pages 2-3 cold, page 0 hot
  EXPECT_EQ(rig.reclaimer->take_pages(), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(rig.engine->stats().refaults_activated, 1u);
  for (int epoch = 4; epoch < 6; ++epoch) {
    rig.epoch();
    EXPECT_TRUE(rig.reclaimer->take_pages().empty()) << "epoch " << epoch;
  }
  rig.refault(1);  // in epoch 6, 4 epochs after its reclaim: not active
  EXPECT_EQ(rig.engine->stats().refaults_activated, 1u);
  for (int epoch = 6; epoch < 13; ++epoch) {
    rig.epoch();
    const std::vector<uint64_t> pages = rig.reclaimer->take_pages();
    EXPECT_FALSE(contains(pages, 0)) << "the active page went in epoch " << epoch;
    EXPECT_EQ(contains(pages, 1), epoch == 8) << "epoch " << epoch;
  }
  rig.epoch();  // epoch 13: page 0 idle for the 10 active epochs
  EXPECT_EQ(rig.reclaimer->take_pages(), (std::vector<uint64_t>{0}));
  const ReclaimStats stats = rig.engine->stats();
  EXPECT_EQ(stats.refaults, 2u);
  EXPECT_EQ(stats.reclaimed_pages, 6u);
  EXPECT_EQ(stats.reclaimed_now, 4u);
  EXPECT_EQ(stats.refault_latency.samples, 2u);
}

// A write reported by the DirtySource keeps a page young, and with no writes it goes cold
// after exactly `cold` epochs.
TEST(ReclaimEngineTest, DirtyPagesStayYoung) {
  EngineRig rig;
  rig.make_engine(test_policy(3));
  rig.touch(0, 4);
  for (int epoch = 0; epoch < 6; ++epoch) {
    rig.dirty.next = {IpaRange{page_ipa(0), 2 * kPageSize}};
    rig.epoch();
    const std::vector<uint64_t> pages = rig.reclaimer->take_pages();
    EXPECT_EQ(pages, epoch == 3 ? (std::vector<uint64_t>{2, 3}) : (std::vector<uint64_t>{}))
        << "epoch " << epoch;
  }
  // After epoch 5: page 0 written in it, page 2 last touched before epoch 0.
  EXPECT_EQ(rig.engine->idle_epochs(page_ipa(0)), 1u);
  EXPECT_EQ(rig.engine->idle_epochs(page_ipa(2)), 6u);
  EXPECT_EQ(rig.engine->idle_epochs(page_ipa(100)), std::nullopt);
}

// With a target, reclaim stops as soon as allocated plus pool bytes are within it (each
// page costs 1 KiB of pool here, so 683 of 1024 pages must go to get 4 MiB under 2 MiB), and
// an epoch that finds the goal met hands nothing over.
TEST(ReclaimEngineTest, TargetStopsAtTheGoal) {
  EngineRig rig;
  ReclaimPolicy policy = test_policy(1);
  policy.target_bytes = uint64_t{2} << 20;
  rig.make_engine(policy);
  rig.reclaimer->bytes_per_page = 1024;
  rig.touch(0, 1024);
  rig.epoch();
  const EpochReport report = rig.epoch();
  EXPECT_EQ(report.reclaimed, 683u);
  EXPECT_TRUE(report.goal_reached);
  const uint64_t held = *rig.memory->allocated_bytes() + rig.store.stats().pool_bytes;
  EXPECT_LE(held, *policy.target_bytes);
  EXPECT_GT(held + kPageSize - 1024, *policy.target_bytes) << "reclaimed more than needed";
  for (const auto& window : rig.reclaimer->windows) {
    uint64_t bytes = 0;
    for (const IpaRange& run : window)
      bytes += run.size;
    EXPECT_LE(bytes, kLargePageSize) << "a window over 2 MiB";
  }
  rig.reclaimer->take_pages();
  EXPECT_EQ(rig.epoch().handed, 0u);
}

// A fraction target is a share of guest RAM: 25% of 8 MiB with 3 MiB allocated and a free
// pool leaves exactly 2 MiB resident.
TEST(ReclaimEngineTest, FractionTargetIsAShareOfRam) {
  EngineRig rig;
  ReclaimPolicy policy = test_policy(1);
  policy.target_fraction = 0.25;
  rig.make_engine(policy);
  rig.touch(0, 768);
  rig.epoch();
  EXPECT_EQ(rig.epoch().reclaimed, 256u);
  EXPECT_EQ(*rig.memory->allocated_bytes(), uint64_t{2} << 20);
}

// The rate limit: at 40 pages' worth per second and 1 s epochs, 200 cold pages go 40 per
// epoch, coldest first (pages first seen earlier go first).
TEST(ReclaimEngineTest, RateLimitsPagesPerEpoch) {
  EngineRig rig;
  ReclaimPolicy policy = test_policy(1);
  policy.max_rate = 40 * kPageSize;
  rig.make_engine(policy);
  rig.touch(100, 100);
  rig.epoch();
  rig.touch(0, 100);
  rig.epoch();
  EXPECT_EQ(rig.reclaimer->take_pages().size(), 40u);
  for (int epoch = 2; epoch < 6; ++epoch) {
    rig.epoch();
    const std::vector<uint64_t> handed = rig.reclaimer->take_pages();
    EXPECT_EQ(handed.size(), 40u) << "epoch " << epoch;
    if (epoch == 2) {
      EXPECT_TRUE(std::all_of(handed.begin(), handed.end(), [](uint64_t p) { return p >= 100; }))
          << "the older pages first";
    }
  }
  rig.epoch();
  EXPECT_EQ(rig.reclaimer->take_pages().size(), 0u) << "all 200 gone after epoch 5";
  EXPECT_EQ(rig.engine->stats().reclaimed_pages, 200u);
}

// The promotion budget: 20 refaults against a footprint of 230 pages (0-179, 200-249: 8.7% > 5%)
// back the next epoch off, with cold candidates waiting; once the refaults are older than a minute
// reclaim resumes and takes them.
TEST(ReclaimEngineTest, BudgetBacksOffAndRecovers) {
  EngineRig rig;
  ReclaimPolicy policy = test_policy(2);
  policy.promotion_budget = 0.05;
  rig.make_engine(policy);
  const IpaRange hot{page_ipa(0), 100 * kPageSize};
  rig.touch(0, 180);  // 0-99 hot, 100-179 cold
  rig.dirty.next = {hot};
  rig.epoch();  // epoch 0
  rig.touch(200, 50);
  rig.dirty.next = {hot};
  rig.epoch();  // epoch 1: 200-249 first seen
  rig.dirty.next = {hot};
  EXPECT_EQ(rig.epoch().reclaimed, 80u);  // epoch 2: 100-179
  rig.reclaimer->take_pages();
  for (uint64_t page = 100; page < 120; ++page)
    rig.refault(page);
  rig.dirty.next = {hot};
  const EpochReport backed = rig.epoch();  // epoch 3: 200-249 are cold, but the budget
  EXPECT_TRUE(backed.backed_off);
  EXPECT_NEAR(backed.promotion_rate, 20.0 / 230.0, 1e-9);
  EXPECT_TRUE(rig.reclaimer->take_pages().empty());
  EXPECT_EQ(rig.engine->stats().backoffs, 1u);

  rig.now += std::chrono::seconds(61);
  rig.dirty.next = {hot};
  const EpochReport resumed = rig.epoch();
  EXPECT_FALSE(resumed.backed_off);
  EXPECT_EQ(resumed.promotion_rate, 0.0);
  std::vector<uint64_t> pages = rig.reclaimer->take_pages();
  EXPECT_EQ(pages.size(), 50u);
  EXPECT_TRUE(std::all_of(pages.begin(), pages.end(), [](uint64_t p) { return p >= 200; }));
  EXPECT_EQ(rig.engine->stats().backoffs, 1u);
}

// Incompressible pages are not offered again until written; full pages wait while the pool
// is at its limit and are offered once it has room; skipped pages wait for the next retry
// sweep (every cold period); aborted pages count as written at the abort.
TEST(ReclaimEngineTest, PagesLeftResidentWaitForTheirReason) {
  EngineRig rig;
  rig.make_engine(test_policy(4));
  rig.reclaimer->incompressible = {1};
  rig.reclaimer->full = {2};
  rig.reclaimer->skipped = {3};
  rig.reclaimer->aborted = {4};
  rig.store.set_pool(0, 0);
  rig.touch(1, 4);
  rig.epochs(5);
  EXPECT_EQ(rig.reclaimer->take_pages(), (std::vector<uint64_t>{1, 2, 3, 4}));  // epoch 4
  rig.reclaimer->incompressible.clear();
  rig.reclaimer->full.clear();
  rig.reclaimer->skipped.clear();
  rig.reclaimer->aborted.clear();
  rig.store.set_pool(1 << 20, 1 << 20);  // the pool is full now
  EXPECT_EQ(rig.engine->idle_epochs(page_ipa(4)), 1u) << "an abort is a write";
  rig.epochs(4);  // epochs 5-8
  EXPECT_EQ(rig.reclaimer->take_pages(), (std::vector<uint64_t>{3, 4}))
      << "epoch 8: the retry sweep takes 3, page 4 is cold again";
  rig.store.set_pool(0, 1 << 20);  // room again
  rig.epoch();                     // epoch 9
  EXPECT_EQ(rig.reclaimer->take_pages(), (std::vector<uint64_t>{2}));
  rig.engine->vmm_accessed(page_run(1), true, 0);  // a VMM write to the incompressible page
  rig.epochs(4);                                   // epochs 10-13
  EXPECT_TRUE(rig.reclaimer->take_pages().empty());
  rig.epoch();  // epoch 14: 4 epochs after the write
  EXPECT_EQ(rig.reclaimer->take_pages(), (std::vector<uint64_t>{1}));
  const ReclaimStats stats = rig.engine->stats();
  EXPECT_EQ(stats.incompressible_pages, 1u);
  EXPECT_EQ(stats.full_pages, 1u);
  EXPECT_EQ(stats.aborted_pages, 1u);
  EXPECT_EQ(stats.reclaimed_now, 4u);
}

// A failed window is counted and logged, its pages stay candidates (and go next epoch); a
// failed harvest skips the epoch's reclaim; data loss fails the epoch.
TEST(ReclaimEngineTest, ErrorsAreCountedAndDataLossIsReturned) {
  EngineRig rig;
  rig.make_engine(test_policy(1));
  rig.touch(0, 4);
  rig.epoch();
  rig.reclaimer->fail_next = make_error(ErrorCode::kInternal, "fake window failure");
  EXPECT_EQ(rig.epoch().errors, 1u);
  EXPECT_EQ(rig.reclaimer->take_pages().size(), 4u);
  EXPECT_EQ(rig.engine->stats().reclaimed_now, 0u);
  ASSERT_EQ(rig.logged.size(), 1u);
  EXPECT_NE(rig.logged[0].find("fake window failure"), std::string::npos);

  rig.dirty.fail_next = true;
  const EpochReport skipped = rig.epoch();
  EXPECT_EQ(skipped.errors, 1u);
  EXPECT_EQ(skipped.handed, 0u);
  EXPECT_EQ(rig.epoch().reclaimed, 4u);
  EXPECT_EQ(rig.engine->stats().errors, 2u);

  rig.touch(8, 1);
  rig.epoch();
  rig.reclaimer->fail_next = make_error(ErrorCode::kDataLoss, "entry of page 8 corrupted");
  rig.now += rig.engine->policy().period;
  auto lost = rig.engine->run_epoch();
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.error().code, ErrorCode::kDataLoss);
}

// A VMM read restores a reclaimed page (young again); a VMM read of a resident page is not a
// write and leaves its age alone.
TEST(ReclaimEngineTest, VmmAccessesRestoreAndWrite) {
  EngineRig rig;
  rig.make_engine(test_policy(2), false);
  rig.touch(0, 2);
  rig.epoch();
  rig.epoch();
  rig.epoch();  // epoch 2: both reclaimed
  ASSERT_EQ(rig.engine->stats().reclaimed_now, 2u);
  rig.touch(0);
  rig.engine->vmm_accessed(page_run(0), false, 1);
  rig.epoch();
  EXPECT_EQ(rig.engine->idle_epochs(page_ipa(0)), 1u);
  EXPECT_EQ(rig.engine->stats().vmm_restores, 1u);
  EXPECT_EQ(rig.engine->stats().reclaimed_now, 1u);
  rig.engine->vmm_accessed(page_run(0), false, 0);
  rig.epoch();
  EXPECT_EQ(rig.engine->idle_epochs(page_ipa(0)), 2u);
}

}  // namespace
}  // namespace hvmm::vmm
