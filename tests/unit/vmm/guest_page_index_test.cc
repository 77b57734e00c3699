// Tests of GuestPageIndex over a layout with RAM on both sides of the MMIO hole: page
// numbers follow host offsets, IPAs in the hole have none, and runs split at the hole.
#include "hvmm/vmm/reclaim/guest_page_index.h"

#include <gtest/gtest.h>

#include <vector>

namespace hvmm::vmm {
namespace {

constexpr uint64_t kRam = kMmioHoleStart + (uint64_t{8} << 20);  // 8 MiB above 4 GiB
constexpr uint64_t kLowPages = kMmioHoleStart / kPageSize;

// Indexes are host offsets: the first page above the hole follows the last one below it.
TEST(GuestPageIndexTest, IndexesFollowHostOffsets) {
  const GuestPageIndex index(ram_layout(kRam), kRam);
  EXPECT_EQ(index.pages(), kRam / kPageSize);
  EXPECT_EQ(index.index_of(Ipa(kMmioHoleStart - kPageSize)), kLowPages - 1);
  EXPECT_EQ(index.index_of(Ipa(kMmioHoleEnd)), kLowPages);
  EXPECT_EQ(index.index_of(Ipa(kMmioHoleStart)), std::nullopt);
  EXPECT_EQ(index.ipa_of(kLowPages), Ipa(kMmioHoleEnd));
  EXPECT_EQ(index.ipa_of(kLowPages - 1), Ipa(kMmioHoleStart - kPageSize));
  EXPECT_EQ(index.ipa_of(index.pages()), std::nullopt);
}

// An IPA run across the hole visits the RAM on each side; an index run across the region
// boundary becomes two IPA runs.
TEST(GuestPageIndexTest, RunsSplitAtTheHole) {
  const GuestPageIndex index(ram_layout(kRam), kRam);
  std::vector<PageIndexRun> parts;
  const Ipa from(kMmioHoleStart - 2 * kPageSize);
  index.for_each_run(IpaRange{from, kMmioHoleEnd + 3 * kPageSize - from.value()},
                     [&](PageIndexRun run) { parts.push_back(run); });
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].first, kLowPages - 2);
  EXPECT_EQ(parts[0].count, 2u);
  EXPECT_EQ(parts[1].first, kLowPages);
  EXPECT_EQ(parts[1].count, 3u);

  std::vector<IpaRange> runs;
  index.append_ipa_runs(PageIndexRun{kLowPages - 1, 3}, runs);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0], (IpaRange{Ipa(kMmioHoleStart - kPageSize), kPageSize}));
  EXPECT_EQ(runs[1], (IpaRange{Ipa(kMmioHoleEnd), 2 * kPageSize}));
}

}  // namespace
}  // namespace hvmm::vmm
