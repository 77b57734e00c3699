// Tests of the dirty bitmap helpers: set bits become IPA runs placed by their memslot, and
// the clears that re-arm them keep KVM's 64-page rules.
#include "hvmm/vmm/reclaim/dirty/dirty_bitmap.h"

#include <gtest/gtest.h>

#include <vector>

#include "dirty_test_support.h"

namespace hvmm::vmm {
namespace {

using testing::logging_slot;

constexpr uint64_t kHigh = uint64_t{4} << 30;  // a slot above the 32-bit MMIO hole

// The runs for_each_dirty_run reports for `slot` and `bitmap`.
std::vector<IpaRange> runs_of(const Memslot& slot, const std::vector<uint64_t>& bitmap) {
  std::vector<IpaRange> runs;
  for_each_dirty_run(slot, bitmap, [&](IpaRange run) { runs.push_back(run); });
  return runs;
}

// A run of set bits that crosses a word boundary is one run; runs are placed at the slot's
// IPA, not at its memfd offset, and in page order.
TEST(DirtyBitmap, RunsArePlacedBySlot) {
  const Memslot slot = logging_slot(1, kHigh, 256, 0xc0000000);
  std::vector<uint64_t> bitmap(4, 0);
  bitmap[0] = uint64_t{1} << 0 | uint64_t{0x3} << 62;  // page 0, pages 62-63
  bitmap[1] = 0x1;                                     // page 64: joins 62-63
  bitmap[3] = uint64_t{1} << 63;                       // the slot's last page
  EXPECT_EQ(runs_of(slot, bitmap),
            (std::vector<IpaRange>{{Ipa(kHigh), kPageSize},
                                   {Ipa(kHigh + 62 * kPageSize), 3 * kPageSize},
                                   {Ipa(kHigh + 255 * kPageSize), kPageSize}}));
  EXPECT_EQ(for_each_dirty_run(slot, bitmap, [](IpaRange) {}), 5u);
}

// The same bitmap in two slots lands in each slot's own IPA range: page numbers are relative
// to their slot.
TEST(DirtyBitmap, SameBitsInTwoSlotsAreDifferentPages) {
  const std::vector<uint64_t> bitmap = {0xf0};
  const Memslot low = logging_slot(0, 0, 64);
  const Memslot high = logging_slot(1, kHigh, 64, 64 * kPageSize);
  EXPECT_EQ(runs_of(low, bitmap), (std::vector<IpaRange>{{Ipa(4 * kPageSize), 4 * kPageSize}}));
  EXPECT_EQ(runs_of(high, bitmap),
            (std::vector<IpaRange>{{Ipa(kHigh + 4 * kPageSize), 4 * kPageSize}}));
}

// Bits past the slot's last page (a slot of 70 pages has 58 spare bits in its second word)
// are never reported, and a full bitmap is one run of the whole slot.
TEST(DirtyBitmap, SpareBitsAreIgnored) {
  const Memslot slot = logging_slot(2, 0x100000, 70);
  const std::vector<uint64_t> all(2, ~uint64_t{0});
  EXPECT_EQ(runs_of(slot, all), (std::vector<IpaRange>{{Ipa(0x100000), 70 * kPageSize}}));
  const std::vector<uint64_t> spare_only = {0, ~uint64_t{0} << 6};
  EXPECT_TRUE(runs_of(slot, spare_only).empty());
}

// KVM's rules: first_page on 64 pages, inside the slot, and num_pages on 64 pages unless the
// range ends at the slot's end.
TEST(DirtyBitmap, ClearRangeRules) {
  constexpr uint64_t kPages = 1000;  // not a multiple of 64: the last word is partial
  EXPECT_TRUE(check_clear_range({0, 64}, kPages).ok());
  EXPECT_TRUE(check_clear_range({960, 40}, kPages).ok());  // ends at the slot's end
  EXPECT_TRUE(check_clear_range({0, 1000}, kPages).ok());
  auto misaligned = check_clear_range({32, 64}, kPages);
  ASSERT_FALSE(misaligned.ok());
  EXPECT_NE(misaligned.error().message.find("first_page is not a multiple of 64"),
            std::string::npos);
  auto short_middle = check_clear_range({64, 40}, kPages);
  ASSERT_FALSE(short_middle.ok());
  EXPECT_NE(short_middle.error().message.find("num_pages is not a multiple of 64"),
            std::string::npos);
  EXPECT_FALSE(check_clear_range({960, 64}, kPages).ok());  // past the end
  EXPECT_FALSE(check_clear_range({1024, 0}, kPages).ok());
}

// The clear spans the first to the last dirty word, starts on 64 pages and is cut at the
// slot's end; every range it yields passes KVM's rules.
TEST(DirtyBitmap, ClearRangesCoverTheDirtyWords) {
  constexpr uint64_t kPages = 1000;
  std::vector<uint64_t> bitmap(dirty_bitmap_words(kPages), 0);
  EXPECT_TRUE(clear_ranges(bitmap, kPages).empty());
  bitmap[2] = 0x10;               // page 132
  bitmap[5] = uint64_t{1} << 63;  // page 383
  EXPECT_EQ(clear_ranges(bitmap, kPages), (std::vector<ClearRange>{{128, 256}}));
  bitmap[15] = uint64_t{1} << 39;  // page 999, the slot's last
  const auto to_end = clear_ranges(bitmap, kPages);
  EXPECT_EQ(to_end, (std::vector<ClearRange>{{128, 872}}));
  for (const ClearRange& range : to_end) {
    EXPECT_TRUE(check_clear_range(range, kPages).ok());
  }
}

// A clear longer than the largest request is split into pieces that each keep the rules and
// together cover the same pages.
TEST(DirtyBitmap, LongClearsAreSplitAligned) {
  constexpr uint64_t kPages = 1000;
  const std::vector<uint64_t> bitmap(dirty_bitmap_words(kPages), ~uint64_t{0});
  const auto pieces = clear_ranges(bitmap, kPages, 300);  // rounded down to 256
  EXPECT_EQ(pieces, (std::vector<ClearRange>{{0, 256}, {256, 256}, {512, 256}, {768, 232}}));
  for (const ClearRange& range : pieces) {
    EXPECT_TRUE(check_clear_range(range, kPages).ok()) << range.first_page;
  }
}

}  // namespace
}  // namespace hvmm::vmm
