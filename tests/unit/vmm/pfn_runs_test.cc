// Unit and property tests of the balloon's PFN and range coalescing (pfn_runs.h).
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "hvmm/vmm/devices/balloon/pfn_runs.h"

namespace hvmm::vmm {
namespace {

const std::vector<IpaRange> kRam = {{Ipa(0), 64 << 20}, {Ipa(uint64_t{4} << 30), 16 << 20}};

// Whether page `pfn` lies in `kRam`.
bool in_ram(uint64_t pfn) {
  const Ipa page(pfn << kPageShift);
  for (const IpaRange& region : kRam) {
    if (region.contains(page)) {
      return true;
    }
  }
  return false;
}

// Random PFN batches (with duplicates, hole and out-of-RAM pages): no accepted PFN is lost,
// none is added, refused ones are exactly those outside RAM, and the runs are sorted,
// disjoint and never adjacent.
TEST(PfnRuns, RandomBatchesLoseNoPfn) {
  std::mt19937_64 random(42);
  for (int round = 0; round < 500; ++round) {
    std::vector<uint32_t> pfns(random() % 257);
    for (uint32_t& pfn : pfns) {
      switch (random() % 4) {
        case 0:
          pfn = static_cast<uint32_t>(random() % 64);
          break;  // dense, duplicates
        case 1:
          pfn = static_cast<uint32_t>(random() % (1u << 21));
          break;
        case 2:
          pfn = static_cast<uint32_t>((uint64_t{4} << 18) + random() % 8192);
          break;
        default:
          pfn = static_cast<uint32_t>(random());
          break;
      }
    }
    PageRuns runs = runs_from_pfns(pfns, kRam);
    std::set<uint64_t> expected;
    uint64_t refused = 0;
    for (uint32_t pfn : pfns) {
      if (in_ram(pfn)) {
        expected.insert(pfn);
      } else {
        ++refused;
      }
    }
    std::set<uint64_t> got;
    for (size_t i = 0; i < runs.runs.size(); ++i) {
      const IpaRange& run = runs.runs[i];
      ASSERT_TRUE(run.start.is_aligned(kPageSize) && is_aligned(run.size, kPageSize));
      if (i > 0) {
        ASSERT_LT(runs.runs[i - 1].end(), run.start) << "runs overlap or touch";
      }
      for (uint64_t p = run.start.page_number(); p < run.end().page_number(); ++p) {
        got.insert(p);
      }
    }
    ASSERT_EQ(got, expected);
    ASSERT_EQ(runs.pages, expected.size());
    ASSERT_EQ(runs.refused, refused);
  }
}

// Reported ranges are clipped to RAM; what falls outside, and misaligned ranges, are refused.
TEST(PfnRuns, RangesAreClippedToRam) {
  const std::vector<IpaRange> ranges = {
      {Ipa((64 << 20) - 0x2000), 0x4000},  // half past the low region
      {Ipa(0x1000), 0x1000},               // adjacent runs merge
      {Ipa(0x2000), 0x3000},
      {Ipa(uint64_t{3} << 30), 0x200000},  // the MMIO hole
      {Ipa(0x10010), 0x1000},              // misaligned
  };
  PageRuns runs = runs_from_ranges(ranges, kRam);
  ASSERT_EQ(runs.runs.size(), 2u);
  EXPECT_EQ(runs.runs[0], (IpaRange{Ipa(0x1000), 0x4000}));
  EXPECT_EQ(runs.runs[1], (IpaRange{Ipa((64 << 20) - 0x2000), 0x2000}));
  EXPECT_EQ(runs.pages, 6u);
  EXPECT_EQ(runs.refused, 2u + 512u + 1u);
}

// Overlapping and duplicate ranges coalesce into one run.
TEST(PfnRuns, CoalescesOverlaps) {
  auto runs = coalesce_ranges({{Ipa(0x5000), 0x2000}, {Ipa(0x4000), 0x2000}, {Ipa(0x4000), 0}});
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0], (IpaRange{Ipa(0x4000), 0x3000}));
}

}  // namespace
}  // namespace hvmm::vmm
