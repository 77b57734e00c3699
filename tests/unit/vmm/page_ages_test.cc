// Tests of PageAges on its own: the idle age across the 24-bit stamp's wrap and its
// saturation, shadow entries and the refault distance, and how a pending page settles when
// events race with its window.
#include "hvmm/vmm/reclaim/page_ages.h"

#include <gtest/gtest.h>

namespace hvmm::vmm {
namespace {

constexpr uint64_t kWrap = uint64_t{1} << PageAges::kStampBits;
constexpr CandidateRule kRule{.cold = 2, .active = 5};

// Step `ages` by `epochs` epochs.
void advance(PageAges& ages, uint64_t epochs) {
  for (uint64_t i = 0; i < epochs; ++i)
    ages.advance();
}

// Ages are right across the wrap of the 24-bit stamp (the epoch counter goes on).
TEST(PageAgesTest, IdleAgeAcrossTheStampWrap) {
  PageAges ages(4, kWrap - 3);
  ages.written(0, 0);
  advance(ages, 10);
  EXPECT_EQ(ages.epoch(), kWrap + 7);
  EXPECT_EQ(ages.view(0).idle, 10u);
  ages.written(1, 0);
  EXPECT_EQ(ages.view(1).idle, 0u);
  EXPECT_EQ(ages.view(2).state, PageAgeState::kUnseen);
}

// A page idle for much longer than the stamp can count reads as kMaxIdle old, never as young
// again (the sweep every kMaxIdle epochs keeps the modular age unambiguous).
TEST(PageAgesTest, IdleAgeSaturatesInsteadOfWrapping) {
  PageAges ages(2);
  ages.written(0, 0);
  advance(ages, PageAges::kMaxIdle - 1);
  EXPECT_EQ(ages.view(0).idle, PageAges::kMaxIdle - 1);
  advance(ages, 2 * kWrap + 5 - (PageAges::kMaxIdle - 1));  // 5 modulo 2^24 in all
  ages.written(1, 0);
  EXPECT_EQ(ages.view(0).idle, PageAges::kMaxIdle);
  EXPECT_EQ(ages.view(1).idle, 0u);
}

// A reclaimed page keeps its idle age (since the last write) while its shadow entry (the
// epoch it left) decides the refault distance: refaulted 3 epochs after leaving it is active
// with a distance of 3, not with 2.
TEST(PageAgesTest, ShadowEntryAndRefaultDistance) {
  for (uint64_t distance : {3u, 2u}) {
    PageAges ages(1);
    ages.written(0, distance);
    advance(ages, 4);
    auto before = ages.begin_reclaim(0, kRule);
    ASSERT_TRUE(before.has_value());
    ages.end_reclaim(0, *before, ReclaimOutcome::kReclaimed);
    EXPECT_EQ(ages.reclaimed_now(), 1u);
    advance(ages, 3);
    EXPECT_EQ(ages.view(0).state, PageAgeState::kReclaimed);
    EXPECT_EQ(ages.view(0).idle, 7u);
    const Promotion promotion = ages.refaulted(0, distance);
    EXPECT_TRUE(promotion.restored);
    EXPECT_EQ(promotion.activated, distance == 3);
    EXPECT_EQ(ages.view(0).active, distance == 3);
    EXPECT_EQ(ages.view(0).idle, 0u);
    EXPECT_EQ(ages.reclaimed_now(), 0u);
  }
}

// An active page is a candidate only once idle for the active period.
TEST(PageAgesTest, ActivePagesWaitLonger) {
  PageAges ages(1);
  ages.written(0, 0);
  advance(ages, 2);
  auto before = ages.begin_reclaim(0, kRule);
  ASSERT_TRUE(before.has_value());
  ages.end_reclaim(0, *before, ReclaimOutcome::kReclaimed);
  ages.refaulted(0, 10);
  advance(ages, 4);
  EXPECT_FALSE(PageAges::is_candidate(ages.view(0), kRule));
  EXPECT_FALSE(ages.begin_reclaim(0, kRule).has_value());
  advance(ages, 1);
  EXPECT_TRUE(PageAges::is_candidate(ages.view(0), kRule));
}

// Events during the window win: a write makes an incompressible outcome moot (the page is
// young and will be retried), a refault of a page the window already committed leaves it
// resident and active, and a failed window restores the page as it was.
TEST(PageAgesTest, PendingPagesSettleWithRacingEvents) {
  PageAges ages(3);
  for (uint64_t page = 0; page < 3; ++page)
    ages.written(page, 0);
  advance(ages, 3);
  std::optional<uint32_t> before[3];
  for (uint64_t page = 0; page < 3; ++page) {
    before[page] = ages.begin_reclaim(page, kRule);
    ASSERT_TRUE(before[page].has_value());
    EXPECT_EQ(ages.view(page).state, PageAgeState::kPending);
  }
  ages.written(0, 0);
  ages.end_reclaim(0, *before[0], ReclaimOutcome::kIncompressible);
  EXPECT_FALSE(ages.view(0).incompressible);
  EXPECT_EQ(ages.view(0).idle, 0u);

  const Promotion back = ages.refaulted(1, 0);
  EXPECT_TRUE(back.restored);
  EXPECT_TRUE(back.activated);
  ages.end_reclaim(1, *before[1], ReclaimOutcome::kReclaimed);
  EXPECT_EQ(ages.view(1).state, PageAgeState::kResident);
  EXPECT_EQ(ages.reclaimed_now(), 0u);

  ages.end_reclaim(2, *before[2], ReclaimOutcome::kFailed);
  EXPECT_EQ(ages.view(2).state, PageAgeState::kResident);
  EXPECT_EQ(ages.view(2).idle, 3u);
  EXPECT_TRUE(PageAges::is_candidate(ages.view(2), kRule));
}

// observe(): an allocated unseen page is first seen now; a resident page found a hole (the
// balloon took it) is unseen again, unless it was touched this epoch.
TEST(PageAgesTest, ObserveFollowsTheMemfd) {
  PageAges ages(3);
  EXPECT_EQ(ages.observe(0, false).state, PageAgeState::kUnseen);
  EXPECT_EQ(ages.observe(0, true).state, PageAgeState::kResident);
  ages.written(1, 0);
  advance(ages, 1);
  ages.written(2, 0);
  EXPECT_EQ(ages.observe(1, false).state, PageAgeState::kUnseen);
  EXPECT_EQ(ages.observe(2, false).state, PageAgeState::kResident);
}

}  // namespace
}  // namespace hvmm::vmm
