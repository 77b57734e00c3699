// Tests of the buddy page allocator, including a randomized run against a reference model.
#include "hvmm/guest/mm/buddy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "mm_fixture.h"

namespace hvmm::guest::mm {
namespace {

using testing::FakeMachine;
using testing::kMiB;

// Sum the free frames on the buddy lists of a zone from the per-order block counts.
uint64_t frames_on_lists(const BuddyAllocator& buddy, ZoneId zone) {
  uint64_t frames = 0;
  for (unsigned order = 0; order < kNrOrders; ++order) {
    frames += buddy.free_blocks(zone, order) << order;
  }
  return frames;
}

// All free RAM (minus the Page array) lands in DMA32 as maximal blocks.
TEST(Buddy, InitGivesFreeRamToDma32) {
  FakeMachine machine(64 * kMiB);
  ASSERT_TRUE(machine.ok());
  BuddyAllocator& buddy = machine.buddy();
  const ZoneStats dma32 = buddy.zone_stats(kZoneDma32);
  const uint64_t page_array = (64 * kMiB / kPageSize * sizeof(Page) + kPageSize - 1) / kPageSize;
  EXPECT_EQ(dma32.managed_pages, 63 * kMiB / kPageSize - page_array);
  EXPECT_EQ(dma32.free_pages, dma32.managed_pages);
  EXPECT_EQ(frames_on_lists(buddy, kZoneDma32), dma32.free_pages);
  EXPECT_GE(buddy.free_blocks(kZoneDma32, kMaxOrder), 14u);
  EXPECT_EQ(buddy.zone_stats(kZoneNormal).managed_pages, 0u);
  EXPECT_GT(dma32.watermark_min, 0u);
  EXPECT_LT(dma32.watermark_min, dma32.watermark_low);
  EXPECT_LT(dma32.watermark_low, dma32.watermark_high);
}

// A block of each order is naturally aligned and freeing everything merges back.
TEST(Buddy, AllocationsAreAlignedAndMergeBack) {
  FakeMachine machine(32 * kMiB);
  BuddyAllocator& buddy = machine.buddy();
  const uint64_t top_blocks = buddy.free_blocks(kZoneDma32, kMaxOrder);
  std::vector<std::pair<Page*, unsigned>> held;
  for (unsigned order = 0; order <= kMaxOrder; ++order) {
    Page* page = buddy.alloc_pages(kGfpKernel, order);
    ASSERT_NE(page, nullptr) << "order " << order;
    EXPECT_EQ(buddy.page_to_pfn(page) % (uint64_t{1} << order), 0u);
    held.emplace_back(page, order);
  }
  EXPECT_GT(buddy.zone_stats(kZoneDma32).splits, 0u);
  for (auto [page, order] : held) {
    buddy.free_pages(page, order);
  }
  buddy.drain_all();
  EXPECT_EQ(buddy.free_blocks(kZoneDma32, kMaxOrder), top_blocks);
  EXPECT_GT(buddy.zone_stats(kZoneDma32).merges, 0u);
}

// kGfpZero returns zeroed frames even after they were dirtied.
TEST(Buddy, GfpZeroClears) {
  FakeMachine machine;
  BuddyAllocator& buddy = machine.buddy();
  Page* page = buddy.alloc_pages(kGfpKernel, 1);
  std::memset(buddy.page_address(page), 0xab, 2 * kPageSize);
  buddy.free_pages(page, 1);
  Page* again = buddy.alloc_pages(kGfpZero, 1);
  ASSERT_EQ(again, page);  // LIFO reuse makes the dirty block come back
  const auto* bytes = static_cast<const uint8_t*>(buddy.page_address(again));
  for (uint64_t i = 0; i < 2 * kPageSize; ++i) {
    ASSERT_EQ(bytes[i], 0u) << "byte " << i;
  }
}

// With RAM known to be zero, kGfpZero skips never-used frames but clears reused ones.
TEST(Buddy, ZeroMemorySkipsClearingFreshFrames) {
  host::PhysArena arena(16 * kMiB);
  auto memblock = std::make_unique<Memblock>();
  auto buddy = std::make_unique<BuddyAllocator>();
  host::set_this_cpu(0);
  memblock->add(PhysRange{PhysAddr(0), arena.size()});
  memblock->reserve(PhysRange{PhysAddr(0), kMiB});
  ASSERT_TRUE(buddy->init(*memblock, true));
  Page* fresh = buddy->alloc_pages(kGfpZero, 2);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(buddy->zone_stats(kZoneDma32).zeroing_skipped, 4u);
  EXPECT_EQ(buddy->zone_stats(kZoneDma32).pages_zeroed, 0u);
  std::memset(buddy->page_address(fresh), 0xcd, 4 * kPageSize);
  buddy->free_pages(fresh, 2);
  Page* again = buddy->alloc_pages(kGfpZero, 3);  // the dirty block merged into this one
  ASSERT_NE(again, nullptr);
  const auto* bytes = static_cast<const uint8_t*>(buddy->page_address(again));
  for (uint64_t i = 0; i < 8 * kPageSize; ++i) {
    ASSERT_EQ(bytes[i], 0u) << "byte " << i;
  }
  const ZoneStats stats = buddy->zone_stats(kZoneDma32);
  EXPECT_EQ(stats.pages_zeroed + stats.zeroing_skipped, 12u);
  EXPECT_EQ(buddy->page_to_pfn(again) <= buddy->page_to_pfn(fresh) &&
                buddy->page_to_pfn(fresh) < buddy->page_to_pfn(again) + 8,
            stats.pages_zeroed == 4u);
  buddy->free_pages(again, 3);
}

// Order-0 frees go to the per-CPU list and are reused by the same CPU without the zone.
TEST(Buddy, PerCpuListServesOrderZero) {
  FakeMachine machine;
  BuddyAllocator& buddy = machine.buddy();
  Page* a = buddy.alloc_pages(kGfpKernel, 0);
  const ZoneStats after_refill = buddy.zone_stats(kZoneDma32);
  EXPECT_EQ(after_refill.pcp_refills, 1u);
  EXPECT_EQ(after_refill.pcp_pages, BuddyAllocator::kPcpBatch - 1);
  buddy.free_pages(a, 0);
  Page* b = buddy.alloc_pages(kGfpKernel, 0);
  EXPECT_EQ(a, b);
  const ZoneStats stats = buddy.zone_stats(kZoneDma32);
  EXPECT_EQ(stats.pcp_refills, 1u);
  EXPECT_EQ(stats.pcp_hits, 1u);
  // Another CPU has its own list.
  host::set_this_cpu(1);
  Page* c = buddy.alloc_pages(kGfpKernel, 0);
  EXPECT_NE(c, nullptr);
  EXPECT_EQ(buddy.zone_stats(kZoneDma32).pcp_refills, 2u);
  buddy.free_pages(c, 0);
  buddy.drain_this_cpu();
  host::set_this_cpu(0);
  buddy.free_pages(b, 0);
}

// GFP_KERNEL stops at the min watermark; GFP_ATOMIC may go down to min/2.
TEST(Buddy, WatermarksReserveMemoryForAtomic) {
  FakeMachine machine(16 * kMiB);
  BuddyAllocator& buddy = machine.buddy();
  std::vector<Page*> held;
  while (Page* page = buddy.alloc_pages(kGfpKernel, 0)) {
    held.push_back(page);
  }
  buddy.drain_all();
  const ZoneStats stats = buddy.zone_stats(kZoneDma32);
  EXPECT_GE(stats.free_pages, stats.watermark_min);
  EXPECT_GT(stats.failures, 0u);
  EXPECT_GT(stats.below_low, 0u);
  uint64_t atomic = 0;
  while (Page* page = buddy.alloc_pages(kGfpAtomic, 0)) {
    held.push_back(page);
    ++atomic;
  }
  EXPECT_GT(atomic, 0u);
  buddy.drain_all();
  EXPECT_GE(buddy.zone_stats(kZoneDma32).free_pages, stats.watermark_min / 2);
  for (Page* page : held) {
    buddy.free_pages(page, 0);
  }
}

// RAM above 4 GiB forms ZONE_NORMAL; GFP_DMA32 only returns frames below 4 GiB.
TEST(Buddy, ZonesSplitAtFourGiB) {
  constexpr uint64_t kFourGiB = uint64_t{4} << 30;
  host::PhysArena arena(kFourGiB + 16 * kMiB);
  auto memblock = std::make_unique<Memblock>();
  auto buddy = std::make_unique<BuddyAllocator>();
  memblock->add(
      PhysRange{PhysAddr(0), 32 * kMiB});  // the Page array (~50 MiB for the span) must fit here
  memblock->add(PhysRange{PhysAddr(32 * kMiB), 64 * kMiB});
  memblock->add(PhysRange{PhysAddr(kFourGiB), 16 * kMiB});
  ASSERT_TRUE(buddy->init(*memblock));
  EXPECT_EQ(buddy->zone_stats(kZoneNormal).managed_pages, 16 * kMiB / kPageSize);
  Page* normal = buddy->alloc_pages(kGfpKernel, 2);
  ASSERT_NE(normal, nullptr);
  EXPECT_GE(buddy->page_to_phys(normal).value(), kFourGiB);
  Page* low = buddy->alloc_pages(kGfpDma32, 2);
  ASSERT_NE(low, nullptr);
  EXPECT_LT(buddy->page_to_phys(low).value(), kFourGiB);
  buddy->free_pages(normal, 2);
  buddy->free_pages(low, 2);
}

// Random alloc/free of random orders on four CPUs against a reference bitmap of owned
// frames: no
// overlap, natural alignment, exact free counts, failures only when no aligned free run
// exists above the watermark, and a full merge at the end.
TEST(Buddy, RandomizedAgainstReferenceModel) {
  FakeMachine machine(24 * kMiB);
  BuddyAllocator& buddy = machine.buddy();
  const uint64_t initial_free = buddy.free_pages_total();
  std::vector<uint64_t> initial_blocks;
  for (unsigned order = 0; order < kNrOrders; ++order) {
    initial_blocks.push_back(buddy.free_blocks(kZoneDma32, order));
  }
  std::vector<uint8_t> owned(buddy.end_pfn(), 0);
  std::map<uint64_t, unsigned> live;  // pfn -> order
  uint64_t owned_frames = 0;
  std::mt19937_64 rng(7);
  for (int step = 0; step < 20000; ++step) {
    if (rng() % 64 == 0) {
      host::set_this_cpu(static_cast<unsigned>(rng() % 4));  // per-CPU lists of other CPUs
    }
    const bool do_alloc = live.empty() || rng() % 100 < 55;
    if (do_alloc) {
      const unsigned order = static_cast<unsigned>(rng() % 100 < 70 ? 0 : rng() % kNrOrders);
      const Gfp gfp = rng() % 4 == 0 ? kGfpAtomic : kGfpKernel;
      Page* page = buddy.alloc_pages(gfp, order);
      if (page == nullptr) {
        buddy.drain_all();  // frames parked on per-CPU lists are not allocatable above 0
        page = buddy.alloc_pages(gfp, order);
      }
      if (page == nullptr) {
        const ZoneStats z = buddy.zone_stats(kZoneDma32);
        const uint64_t floor = (gfp & kGfpAtomic) != 0 ? z.watermark_min / 2 : z.watermark_min;
        if (z.free_pages >= (uint64_t{1} << order) + floor) {
          // Enough frames in total: then no block of order >= `order` may be listed.
          for (unsigned o = order; o < kNrOrders; ++o) {
            ASSERT_EQ(buddy.free_blocks(kZoneDma32, o), 0u) << "failed with a free block";
          }
        }
        continue;
      }
      const uint64_t pfn = buddy.page_to_pfn(page);
      ASSERT_EQ(pfn % (uint64_t{1} << order), 0u);
      for (uint64_t i = 0; i < (uint64_t{1} << order); ++i) {
        ASSERT_EQ(owned[pfn + i], 0) << "frame " << pfn + i << " handed out twice";
        owned[pfn + i] = 1;
      }
      // Write a tag into the block to catch overlapping use through memory too.
      *static_cast<uint64_t*>(buddy.page_address(page)) = pfn;
      live[pfn] = order;
      owned_frames += uint64_t{1} << order;
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      const auto [pfn, order] = *it;
      ASSERT_EQ(*static_cast<uint64_t*>(buddy.page_address(buddy.pfn_to_page(pfn))), pfn);
      for (uint64_t i = 0; i < (uint64_t{1} << order); ++i) {
        owned[pfn + i] = 0;
      }
      buddy.free_pages(buddy.pfn_to_page(pfn), order);
      owned_frames -= uint64_t{1} << order;
      live.erase(it);
    }
    ASSERT_EQ(buddy.free_pages_total() + owned_frames, initial_free) << "step " << step;
  }
  for (auto [pfn, order] : live) {
    buddy.free_pages(buddy.pfn_to_page(pfn), order);
  }
  host::set_this_cpu(0);
  buddy.drain_all();
  EXPECT_EQ(buddy.free_pages_total(), initial_free);
  for (unsigned order = 0; order < kNrOrders; ++order) {
    EXPECT_EQ(buddy.free_blocks(kZoneDma32, order), initial_blocks[order]) << "order " << order;
  }
}

}  // namespace
}  // namespace hvmm::guest::mm
