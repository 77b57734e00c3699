// Tests of memblock: range merging, reservation, top-down allocation, free-range walks.
#include "hvmm/guest/mm/memblock.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

namespace hvmm::guest::mm {
namespace {

constexpr uint64_t kPage = 4096;

// Adjacent and overlapping RAM ranges merge into one.
TEST(RangeList, MergesAdjacentAndOverlapping) {
  RangeList list;
  ASSERT_TRUE(list.add(PhysRange{PhysAddr(0x1000), 0x1000}));
  ASSERT_TRUE(list.add(PhysRange{PhysAddr(0x3000), 0x1000}));
  ASSERT_TRUE(list.add(PhysRange{PhysAddr(0x2000), 0x1000}));
  ASSERT_EQ(list.count(), 1u);
  EXPECT_EQ(list.at(0).start.value(), 0x1000u);
  EXPECT_EQ(list.at(0).size, 0x3000u);
  ASSERT_TRUE(list.add(PhysRange{PhysAddr(0x0), 0x10000}));
  ASSERT_EQ(list.count(), 1u);
  EXPECT_EQ(list.at(0).size, 0x10000u);
}

// Removing the middle of a range splits it; removing across ranges trims both.
TEST(RangeList, RemoveSplitsAndTrims) {
  RangeList list;
  ASSERT_TRUE(list.add(PhysRange{PhysAddr(0), 0x10000}));
  ASSERT_TRUE(list.remove(PhysRange{PhysAddr(0x4000), 0x1000}));
  ASSERT_EQ(list.count(), 2u);
  EXPECT_EQ(list.at(0).end().value(), 0x4000u);
  EXPECT_EQ(list.at(1).start.value(), 0x5000u);
  ASSERT_TRUE(list.remove(PhysRange{PhysAddr(0x3000), 0x3000}));
  ASSERT_EQ(list.count(), 2u);
  EXPECT_EQ(list.at(0).end().value(), 0x3000u);
  EXPECT_EQ(list.at(1).start.value(), 0x6000u);
  EXPECT_EQ(list.total(), 0x3000u + 0xa000u);
}

// alloc returns the highest aligned free block below the limit and reserves it.
TEST(Memblock, AllocTopDownAlignedBelowLimit) {
  auto mb = std::make_unique<Memblock>();
  ASSERT_TRUE(mb->add(PhysRange{PhysAddr(0), 0x100000}));
  ASSERT_TRUE(mb->reserve(PhysRange{PhysAddr(0xf0000), 0x10000}));
  const PhysAddr a = mb->alloc(0x3000, 0x4000);
  EXPECT_EQ(a.value(), 0xec000u);
  EXPECT_TRUE(mb->reserved().overlaps(PhysRange{a, 0x3000}));
  const PhysAddr b = mb->alloc(0x1000, 0x1000, PhysAddr(0x8000));
  EXPECT_EQ(b.value(), 0x7000u);
  EXPECT_TRUE(mb->alloc(0x200000, 0x1000) == kNoPhys);
}

// Free ranges are RAM minus reserved, shrunk to whole pages.
TEST(Memblock, FreeRangesArePageAlignedRamMinusReserved) {
  auto mb = std::make_unique<Memblock>();
  ASSERT_TRUE(mb->add(PhysRange{PhysAddr(0), 0x10000}));
  ASSERT_TRUE(mb->add(PhysRange{PhysAddr(0x20000), 0x10000}));
  ASSERT_TRUE(mb->reserve(PhysRange{PhysAddr(0x1800), 0x1000}));    // unaligned: pages 1 and 2 lost
  ASSERT_TRUE(mb->reserve(PhysRange{PhysAddr(0x28000), 0x20000}));  // beyond the end of RAM
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  mb->for_each_free_range(
      [&](PhysRange free) { ranges.emplace_back(free.start.value(), free.end().value()); });
  const std::vector<std::pair<uint64_t, uint64_t>> expected = {
      {0, 0x1000}, {0x3000, 0x10000}, {0x20000, 0x28000}};
  EXPECT_EQ(ranges, expected);
  EXPECT_EQ(mb->start_pfn(), 0u);
  EXPECT_EQ(mb->end_pfn(), 0x30u);
}

// Random add/reserve/alloc/free agree with a per-page reference bitmap.
TEST(Memblock, RandomizedAgainstPageBitmap) {
  constexpr uint64_t kPages = 512;
  std::mt19937_64 rng(42);
  auto mb = std::make_unique<Memblock>();
  std::vector<int> ram(kPages, 0);
  std::vector<int> used(kPages, 0);
  for (int step = 0; step < 2000; ++step) {
    const uint64_t first = rng() % kPages;
    const uint64_t count = 1 + rng() % 16;
    const uint64_t last = first + count > kPages ? kPages : first + count;
    switch (rng() % 4) {
      case 0:
        ASSERT_TRUE(mb->add(PhysRange{PhysAddr(first * kPage), (last - first) * kPage}));
        for (uint64_t p = first; p < last; ++p)
          ram[p] = 1;
        break;
      case 1:
        ASSERT_TRUE(mb->reserve(PhysRange{PhysAddr(first * kPage), (last - first) * kPage}));
        for (uint64_t p = first; p < last; ++p)
          used[p] = 1;
        break;
      case 2:
        ASSERT_TRUE(mb->free(PhysRange{PhysAddr(first * kPage), (last - first) * kPage}));
        for (uint64_t p = first; p < last; ++p)
          used[p] = 0;
        break;
      default: {
        const PhysAddr found = mb->alloc(count * kPage, kPage);
        if (found == kNoPhys) {
          break;
        }
        const uint64_t pa = found.value();
        for (uint64_t p = pa / kPage; p < pa / kPage + count; ++p) {
          ASSERT_EQ(ram[p], 1) << "allocated outside RAM at page " << p;
          ASSERT_EQ(used[p], 0) << "allocated a used page " << p;
          used[p] = 1;
        }
      }
    }
    std::vector<int> free_pages(kPages, 0);
    mb->for_each_free_range([&](PhysRange free) {
      for (uint64_t p = free.start.page_number(); p < free.end().page_number(); ++p)
        free_pages[p] = 1;
    });
    for (uint64_t p = 0; p < kPages; ++p) {
      ASSERT_EQ(free_pages[p], ram[p] && !used[p]) << "page " << p << " step " << step;
    }
  }
}

}  // namespace
}  // namespace hvmm::guest::mm
