// Tests of the buddy allocator's free page reporting support (isolate, put back as reported,
// the reported mark cleared by allocation, notifications) and of its OOM hook.
#include <gtest/gtest.h>

#include <vector>

#include "hvmm/guest/mm/buddy.h"
#include "mm_fixture.h"

namespace hvmm::guest::mm {
namespace {

using testing::FakeMachine;
using testing::kMiB;

constexpr unsigned kReportOrder = 9;
constexpr unsigned kBatch = 32;

// Frames held by `blocks`.
uint64_t frames_of(const IsolatedBlock* blocks, unsigned n) {
  uint64_t frames = 0;
  for (unsigned i = 0; i < n; ++i) {
    frames += uint64_t{1} << blocks[i].order;
  }
  return frames;
}

// Reported blocks of every order >= kReportOrder in DMA32.
uint64_t reported_high_blocks(const BuddyAllocator& buddy) {
  uint64_t n = 0;
  for (unsigned order = kReportOrder; order <= kMaxOrder; ++order) {
    n += buddy.reported_blocks(kZoneDma32, order);
  }
  return n;
}

// Isolated blocks are unreported, of a reportable order, off the free count; put back as
// reported they are marked and a second pass finds nothing to report.
TEST(BuddyReporting, BlocksAreReportedOnce) {
  FakeMachine machine(64 * kMiB);
  BuddyAllocator& buddy = machine.buddy();
  buddy.set_report_order(kReportOrder);
  const uint64_t free_before = buddy.zone_stats(kZoneDma32).free_pages;
  IsolatedBlock blocks[kBatch];
  const unsigned n = buddy.isolate_unreported(blocks, kBatch);
  ASSERT_GT(n, 0u);
  for (unsigned i = 0; i < n; ++i) {
    EXPECT_GE(blocks[i].order, kReportOrder);
    EXPECT_EQ(page_flags(blocks[i].page), 0u) << "isolated blocks are off the lists";
  }
  EXPECT_EQ(buddy.zone_stats(kZoneDma32).free_pages, free_before - frames_of(blocks, n));
  EXPECT_EQ(buddy.zone_stats(kZoneDma32).isolated_pages, frames_of(blocks, n));
  buddy.putback_isolated(blocks, n, /*reported=*/true);
  const ZoneStats after = buddy.zone_stats(kZoneDma32);
  EXPECT_EQ(after.free_pages, free_before);
  EXPECT_EQ(after.isolated_pages, 0u);
  EXPECT_EQ(after.reported_pages, frames_of(blocks, n));
  EXPECT_EQ(reported_high_blocks(buddy), n);
  // Everything reportable (above the low watermark) was reported in one batch of 32 here.
  IsolatedBlock again[kBatch];
  EXPECT_EQ(buddy.isolate_unreported(again, kBatch), 0u)
      << "reported blocks are not reported twice";
  EXPECT_EQ(buddy.take_report_notifications(), 0u) << "putting back does not notify";
}

// Allocating a reported block clears its mark; freeing it notifies, and only it is reported
// next.
TEST(BuddyReporting, AllocationClearsTheMark) {
  FakeMachine machine(64 * kMiB);
  BuddyAllocator& buddy = machine.buddy();
  buddy.set_report_order(kReportOrder);
  IsolatedBlock blocks[kBatch];
  const unsigned n = buddy.isolate_unreported(blocks, kBatch);
  buddy.putback_isolated(blocks, n, /*reported=*/true);
  const uint64_t reported = buddy.zone_stats(kZoneDma32).reported_pages;
  // Allocate 4 MiB blocks until one of the reported ones comes out (they are listed last).
  std::vector<Page*> unreported;
  Page* page = nullptr;
  auto was_reported = [&](Page* p) {
    for (unsigned i = 0; i < n; ++i) {
      if (blocks[i].page == p) {
        return true;
      }
    }
    return false;
  };
  while ((page = buddy.alloc_pages(kGfpKernel, kMaxOrder)) != nullptr && !was_reported(page)) {
    unreported.push_back(page);
  }
  ASSERT_NE(page, nullptr);
  EXPECT_EQ(page_flags(page) & kPageReported, 0u);
  EXPECT_EQ(buddy.zone_stats(kZoneDma32).reported_pages, reported - (uint64_t{1} << kMaxOrder));
  buddy.free_pages(page, kMaxOrder);
  EXPECT_EQ(buddy.take_report_notifications(), uint64_t{1} << kMaxOrder);
  IsolatedBlock next[kBatch];
  ASSERT_EQ(buddy.isolate_unreported(next, kBatch), 1u);
  EXPECT_EQ(next[0].page, page);
  EXPECT_EQ(next[0].order, kMaxOrder);
  buddy.putback_isolated(next, 1, /*reported=*/false);
  EXPECT_EQ(buddy.zone_stats(kZoneDma32).reported_pages, reported - (uint64_t{1} << kMaxOrder));
  for (Page* p : unreported) {
    buddy.free_pages(p, kMaxOrder);
  }
}

// Allocations take unreported blocks before reported ones of the same order.
TEST(BuddyReporting, AllocationsPreferUnreportedBlocks) {
  FakeMachine machine(64 * kMiB);
  BuddyAllocator& buddy = machine.buddy();
  buddy.set_report_order(kReportOrder);
  IsolatedBlock one[1];
  ASSERT_EQ(buddy.isolate_unreported(one, 1), 1u);
  buddy.putback_isolated(one, 1, /*reported=*/true);
  ASSERT_EQ(one[0].order, kMaxOrder);
  Page* page = buddy.alloc_pages(kGfpKernel, kMaxOrder);
  ASSERT_NE(page, nullptr);
  EXPECT_NE(page, one[0].page) << "the reported block was handed out first";
  EXPECT_EQ(buddy.reported_blocks(kZoneDma32, kMaxOrder), 1u);
  buddy.free_pages(page, kMaxOrder);
}

// Isolation stops at the low watermark, so reporting cannot make allocations fail.
TEST(BuddyReporting, IsolationKeepsTheLowWatermark) {
  FakeMachine machine(16 * kMiB);
  BuddyAllocator& buddy = machine.buddy();
  buddy.set_report_order(0);
  std::vector<IsolatedBlock> blocks(4096);
  const unsigned n = buddy.isolate_unreported(blocks.data(), 4096);
  ASSERT_GT(n, 0u);
  const ZoneStats stats = buddy.zone_stats(kZoneDma32);
  EXPECT_GE(stats.free_pages, stats.watermark_low);
  EXPECT_LT(stats.free_pages, stats.watermark_low + (uint64_t{1} << kMaxOrder));
  buddy.putback_isolated(blocks.data(), n, /*reported=*/false);
  EXPECT_EQ(buddy.zone_stats(kZoneDma32).reported_pages, 0u);
}

// State of the OOM hook test: frames held back, given to the allocator when asked.
struct Reserve {
  BuddyAllocator* buddy = nullptr;
  std::vector<Page*> pages;
  uint64_t calls = 0;
};

// The OOM hook: free up to `wanted` (at least 8) held frames.
uint64_t give_back(void* context, uint64_t wanted) {
  auto* reserve = static_cast<Reserve*>(context);
  ++reserve->calls;
  uint64_t n = 0;
  while (!reserve->pages.empty() && (n < wanted || n < 8)) {
    reserve->buddy->free_pages(reserve->pages.back(), 0);
    reserve->pages.pop_back();
    ++n;
  }
  return n;
}

// At the min watermark the OOM hook is asked and its frames serve the allocation; kGfpNoOom
// fails without asking; with nothing left to give the allocation fails.
TEST(BuddyReporting, OomHookFeedsAllocationsAtTheWatermark) {
  FakeMachine machine(16 * kMiB);
  BuddyAllocator& buddy = machine.buddy();
  Reserve reserve{&buddy, {}, 0};
  for (int i = 0; i < 64; ++i) {
    reserve.pages.push_back(buddy.alloc_pages(kGfpKernel, 0));
  }
  std::vector<Page*> held;
  while (Page* page = buddy.alloc_pages(kGfpKernel, 0)) {
    held.push_back(page);
  }
  buddy.set_oom_hook(give_back, &reserve);
  EXPECT_EQ(buddy.alloc_pages(kGfpKernel | kGfpNoOom, 0), nullptr);
  EXPECT_EQ(reserve.calls, 0u);
  uint64_t served = 0;
  while (Page* page = buddy.alloc_pages(kGfpKernel, 0)) {
    held.push_back(page);
    ++served;
  }
  EXPECT_TRUE(reserve.pages.empty());
  EXPECT_GE(served, 64u - 8u) << "the frames given back served allocations";
  EXPECT_GT(reserve.calls, 1u);
  EXPECT_EQ(buddy.oom_hook_calls(), reserve.calls);
  EXPECT_EQ(buddy.oom_hook_pages(), 64u);
  buddy.set_oom_hook(nullptr, nullptr);
  for (Page* page : held) {
    buddy.free_pages(page, 0);
  }
}

}  // namespace
}  // namespace hvmm::guest::mm
