// Tests of the x86-64 page tables, including a randomized run against a std::map.
#include "hvmm/guest/mm/page_table.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>

#include "mm_fixture.h"

namespace hvmm::guest::mm {
namespace {

using testing::FakeMachine;

constexpr uint64_t kBase = uint64_t{1} << 39;  // a PML4-aligned user address
constexpr uint64_t kAttrs = kPteWrite | kPteUser | kPteNx;

// A machine plus one address space's tables.
class PageTableTest : public ::testing::Test {
 protected:
  PageTableTest() : machine_(96 * testing::kMiB) { EXPECT_TRUE(table_->init(&machine_.buddy())); }
  FakeMachine machine_;
  std::unique_ptr<PageTable> table_ = std::make_unique<PageTable>();
};

// The largest page that alignment allows is used: 1 GiB, then 2 MiB, then 4 KiB.
TEST_F(PageTableTest, ChoosesLargestAlignedPages) {
  ASSERT_EQ(
      table_->map(VirtAddr(kBase), PhysAddr(0), kHugePageSize + kLargePageSize + kPageSize, kAttrs),
      PtStatus::kOk);
  EXPECT_EQ(table_->translate(VirtAddr(kBase + 5)).page_size, kHugePageSize);
  EXPECT_EQ(table_->translate(VirtAddr(kBase + 5)).pa.value(), 5u);
  EXPECT_EQ(table_->translate(VirtAddr(kBase + kHugePageSize + 7)).page_size, kLargePageSize);
  EXPECT_EQ(table_->translate(VirtAddr(kBase + kHugePageSize + kLargePageSize)).page_size,
            kPageSize);
  EXPECT_EQ(table_->translate(VirtAddr(kBase + kHugePageSize + kLargePageSize)).pa.value(),
            kHugePageSize + kLargePageSize);
  EXPECT_FALSE(
      table_->translate(VirtAddr(kBase + kHugePageSize + kLargePageSize + kPageSize)).present);
  const Translation t = table_->translate(VirtAddr(kBase));
  EXPECT_EQ(t.flags & (kPteWrite | kPteUser | kPteNx | kPtePresent),
            kPteWrite | kPteUser | kPteNx | kPtePresent);
}

// max_page limits the page size; misaligned or overlapping requests are refused unchanged.
TEST_F(PageTableTest, LimitsAndRefusals) {
  ASSERT_EQ(
      table_->map(VirtAddr(kBase), PhysAddr(kLargePageSize), kLargePageSize, kAttrs, kPageSize),
      PtStatus::kOk);
  EXPECT_EQ(table_->translate(VirtAddr(kBase)).page_size, kPageSize);
  EXPECT_EQ(table_->map(VirtAddr(kBase + 1), PhysAddr(0), kPageSize, kAttrs), PtStatus::kInvalid);
  EXPECT_EQ(table_->map(VirtAddr(kBase), PhysAddr(0), 0, kAttrs), PtStatus::kInvalid);
  EXPECT_EQ(table_->map(VirtAddr(kBase), PhysAddr(0), kPageSize, kPteHuge), PtStatus::kInvalid);
  // Non-canonical, or crossing from the user half into the hole.
  EXPECT_EQ(table_->map(VirtAddr(0x0000800000000000ull), PhysAddr(0), kPageSize, kAttrs),
            PtStatus::kInvalid);
  EXPECT_EQ(table_->map(VirtAddr(0x00007ffffffff000ull), PhysAddr(0), 2 * kPageSize, kAttrs),
            PtStatus::kInvalid);
  EXPECT_EQ(table_->map(VirtAddr(0xffff7ffffffff000ull), PhysAddr(0), kPageSize, kAttrs),
            PtStatus::kInvalid);
  // Overlap in the middle: the part before it must be rolled back.
  EXPECT_EQ(table_->map(VirtAddr(kBase - kLargePageSize), PhysAddr(0), kLargePageSize + kPageSize,
                        kAttrs, kPageSize),
            PtStatus::kExists);
  EXPECT_FALSE(table_->translate(VirtAddr(kBase - kLargePageSize)).present);
  EXPECT_TRUE(table_->translate(VirtAddr(kBase)).present);
}

// Unmapping part of a 2 MiB page splits it and keeps the rest; emptied tables are freed.
TEST_F(PageTableTest, PartialUnmapSplitsAndFreesTables) {
  ASSERT_EQ(table_->map(VirtAddr(kBase), PhysAddr(0), kLargePageSize, kAttrs), PtStatus::kOk);
  const uint64_t tables = table_->table_pages();
  MmuGather gather(&machine_.buddy());
  ASSERT_EQ(table_->unmap(VirtAddr(kBase + kPageSize), kPageSize, gather), PtStatus::kOk);
  EXPECT_EQ(gather.start().value(), kBase + kPageSize);
  EXPECT_EQ(gather.end().value(), kBase + 2 * kPageSize);
  EXPECT_TRUE(table_->translate(VirtAddr(kBase)).present);
  EXPECT_EQ(table_->translate(VirtAddr(kBase)).page_size, kPageSize);
  EXPECT_FALSE(table_->translate(VirtAddr(kBase + kPageSize)).present);
  EXPECT_EQ(table_->translate(VirtAddr(kBase + 2 * kPageSize)).pa.value(), 2 * kPageSize);
  EXPECT_EQ(table_->table_pages(), tables + 1);
  ASSERT_EQ(table_->unmap(VirtAddr(kBase), kLargePageSize, gather), PtStatus::kOk);
  EXPECT_TRUE(gather.tables_freed());
  EXPECT_EQ(table_->table_pages(), 1u);  // only the root is left
  gather.release();
}

// Unmapping one 4 KiB page inside a 1 GiB leaf splits it twice (1G → 2M → 4K); every other
// address keeps its translation, and remapping and unmapping the rest frees every table.
TEST_F(PageTableTest, SplitsGigabytePageDownToFourK) {
  constexpr uint64_t kPa = 3 * kHugePageSize;
  ASSERT_EQ(table_->map(VirtAddr(kBase), PhysAddr(kPa), kHugePageSize, kAttrs), PtStatus::kOk);
  const uint64_t hole = kBase + 5 * kLargePageSize + 7 * kPageSize;
  MmuGather gather(&machine_.buddy());
  ASSERT_EQ(table_->unmap(VirtAddr(hole), kPageSize, gather), PtStatus::kOk);
  EXPECT_FALSE(table_->translate(VirtAddr(hole)).present);
  EXPECT_EQ(table_->translate(VirtAddr(hole - kPageSize)).page_size, kPageSize);
  EXPECT_EQ(table_->translate(VirtAddr(hole - kPageSize)).pa.value(),
            kPa + 5 * kLargePageSize + 6 * kPageSize);
  EXPECT_EQ(table_->translate(VirtAddr(hole + kLargePageSize)).page_size, kLargePageSize);
  EXPECT_EQ(table_->translate(VirtAddr(hole + kLargePageSize)).pa.value(),
            kPa + 6 * kLargePageSize + 7 * kPageSize);
  EXPECT_EQ(table_->translate(VirtAddr(kBase + kHugePageSize - 1)).pa.value(),
            kPa + kHugePageSize - 1);
  ASSERT_EQ(table_->unmap(VirtAddr(kBase), kHugePageSize, gather), PtStatus::kOk);
  EXPECT_EQ(table_->table_pages(), 1u);
  gather.release();
}

// Frames mapped with kPteOwned go back to the buddy allocator after release().
TEST_F(PageTableTest, OwnedFramesFreedAfterRelease) {
  BuddyAllocator& buddy = machine_.buddy();
  const uint64_t free_before = buddy.free_pages_total();
  Page* frame = buddy.alloc_pages(kGfpKernel, 0);
  ASSERT_EQ(table_->map(VirtAddr(kBase), buddy.page_to_phys(frame), kPageSize, kAttrs | kPteOwned),
            PtStatus::kOk);
  MmuGather gather(&buddy);
  ASSERT_EQ(table_->unmap(VirtAddr(kBase), kPageSize, gather), PtStatus::kOk);
  EXPECT_LT(buddy.free_pages_total(), free_before);  // not before the flush
  gather.release();
  EXPECT_EQ(buddy.free_pages_total(), free_before);
}

// protect rewrites attributes, splitting a large page when only part is covered.
TEST_F(PageTableTest, ProtectSplitsAndRewrites) {
  ASSERT_EQ(table_->map(VirtAddr(kBase), PhysAddr(0), kLargePageSize, kAttrs), PtStatus::kOk);
  MmuGather gather(&machine_.buddy());
  ASSERT_EQ(table_->protect(VirtAddr(kBase), kPageSize, kPteUser, gather), PtStatus::kOk);
  EXPECT_EQ(table_->translate(VirtAddr(kBase)).flags & kPteWrite, 0u);
  EXPECT_EQ(table_->translate(VirtAddr(kBase)).flags & kPteNx, 0u);
  EXPECT_NE(table_->translate(VirtAddr(kBase + kPageSize)).flags & kPteWrite, 0u);
  EXPECT_EQ(table_->translate(VirtAddr(kBase + kPageSize)).pa.value(), kPageSize);
}

// The kernel half is shared by copying PML4 slots; destroy frees only the user half.
TEST_F(PageTableTest, ShareKernelHalfAndDestroy) {
  auto kernel = std::make_unique<PageTable>();
  ASSERT_TRUE(kernel->init(&machine_.buddy()));
  constexpr uint64_t kKernelVa = 0xffff888000000000ull;
  ASSERT_EQ(kernel->map(VirtAddr(kKernelVa), PhysAddr(0), kLargePageSize, kPteWrite | kPteGlobal),
            PtStatus::kOk);
  table_->share_kernel_half(*kernel);
  EXPECT_TRUE(table_->translate(VirtAddr(kKernelVa + 0x1234)).present);
  ASSERT_EQ(table_->map(VirtAddr(kBase), PhysAddr(0), kPageSize, kAttrs), PtStatus::kOk);
  BuddyAllocator& buddy = machine_.buddy();
  buddy.drain_all();
  const uint64_t free_before = buddy.free_pages_total();
  const uint64_t tables = table_->table_pages();
  MmuGather gather(&buddy);
  table_->destroy(gather);
  gather.release();
  buddy.drain_all();
  EXPECT_EQ(buddy.free_pages_total(), free_before + tables);
  EXPECT_TRUE(kernel->translate(VirtAddr(kKernelVa)).present);
}

// Random map/unmap/protect in a 64 MiB window with 4 KiB and 2 MiB pages, compared after
// every step, page by page, with a std::map model; finally everything is unmapped and
// every table except the root is freed.
TEST_F(PageTableTest, RandomizedAgainstMap) {
  constexpr uint64_t kWindowPages = 64 * testing::kMiB / kPageSize;
  struct Entry {
    uint64_t pa;
    uint64_t attrs;
  };
  std::map<uint64_t, Entry> model;  // page index -> translation
  std::mt19937_64 rng(11);
  const uint64_t attr_choices[] = {kPteUser, kPteUser | kPteWrite, kPteUser | kPteNx,
                                   kPteWrite | kPteNx};
  MmuGather gather(&machine_.buddy());
  for (int step = 0; step < 400; ++step) {
    // Maps are 2 MiB-aligned runs ("big") or small 4 KiB runs; unmap and protect ranges are
    // any size up to 3 MiB at any page, so they cut large leaves and tables partially.
    const bool big = rng() % 3 == 0;
    const uint64_t unit = big ? 512 : 1;
    const uint64_t first = (rng() % (kWindowPages / unit)) * unit;
    uint64_t count = (1 + rng() % (big ? 3 : 64)) * unit;
    if (rng() % 2 == 0) {
      count = 1 + rng() % 768;
    }
    count = first + count > kWindowPages ? kWindowPages - first : count;
    const uint64_t va = kBase + first * kPageSize;
    const uint64_t len = count * kPageSize;
    const uint64_t attrs = attr_choices[rng() % 4];
    switch (rng() % 3) {
      case 0: {
        const uint64_t pa = (rng() % 1024) * kLargePageSize + (big ? 0 : (rng() % 512) * kPageSize);
        bool free_range = true;
        for (uint64_t p = first; p < first + count; ++p) {
          free_range = free_range && model.count(p) == 0;
        }
        const PtStatus status =
            table_->map(VirtAddr(va), PhysAddr(pa), len, attrs, big ? kLargePageSize : kPageSize);
        ASSERT_EQ(status, free_range ? PtStatus::kOk : PtStatus::kExists) << "step " << step;
        if (free_range) {
          for (uint64_t p = 0; p < count; ++p) {
            model[first + p] = Entry{pa + p * kPageSize, attrs};
          }
        }
        break;
      }
      case 1:
        ASSERT_EQ(table_->unmap(VirtAddr(va), len, gather), PtStatus::kOk);
        for (uint64_t p = first; p < first + count; ++p) {
          model.erase(p);
        }
        break;
      default:
        ASSERT_EQ(table_->protect(VirtAddr(va), len, attrs, gather), PtStatus::kOk);
        for (uint64_t p = first; p < first + count; ++p) {
          auto it = model.find(p);
          if (it != model.end()) {
            it->second.attrs = attrs;
          }
        }
    }
    for (uint64_t p = 0; p < kWindowPages; ++p) {
      const Translation t = table_->translate(VirtAddr(kBase + p * kPageSize));
      auto it = model.find(p);
      ASSERT_EQ(t.present, it != model.end()) << "page " << p << " step " << step;
      if (t.present) {
        ASSERT_EQ(t.pa.value(), it->second.pa) << "page " << p << " step " << step;
        ASSERT_EQ(t.flags & kPteAttrMask, it->second.attrs) << "page " << p << " step " << step;
      }
    }
  }
  ASSERT_EQ(table_->unmap(VirtAddr(kBase), kWindowPages * kPageSize, gather), PtStatus::kOk);
  EXPECT_EQ(table_->table_pages(), 1u);
  gather.release();
}

}  // namespace
}  // namespace hvmm::guest::mm
