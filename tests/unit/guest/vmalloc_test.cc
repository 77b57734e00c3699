// Tests of vmalloc: guard pages, mapping, and lazy batched purging.
#include "hvmm/guest/mm/vmalloc.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "mm_fixture.h"

namespace hvmm::guest::mm {
namespace {

using testing::FakeMachine;

constexpr uint64_t kStart = 0xffffc90000000000ull;
constexpr uint64_t kEnd = kStart + (uint64_t{1} << 30);

// A kernel address space with a vmalloc range.
class VmallocTest : public ::testing::Test {
 protected:
  VmallocTest() : machine_(64 * testing::kMiB) {
    EXPECT_TRUE(kernel_->init(&machine_.buddy()));
    EXPECT_TRUE(vmalloc_->init(&machine_.buddy(), kernel_.get(),
                               VirtRange{VirtAddr(kStart), kEnd - kStart}));
    host::reset_flush_stats();
  }
  FakeMachine machine_;
  std::unique_ptr<PageTable> kernel_ = std::make_unique<PageTable>();
  std::unique_ptr<Vmalloc> vmalloc_ = std::make_unique<Vmalloc>();
};

// Areas are mapped writable/NX with 4 KiB pages and separated by an unmapped guard page.
TEST_F(VmallocTest, AreasAreMappedWithGuardPages) {
  void* a = vmalloc_->alloc(3 * kPageSize);
  void* b = vmalloc_->alloc(1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const auto va = reinterpret_cast<uint64_t>(a);
  EXPECT_EQ(va, kStart);
  EXPECT_EQ(reinterpret_cast<uint64_t>(b), va + 4 * kPageSize);
  for (uint64_t i = 0; i < 3; ++i) {
    const Translation t = kernel_->translate(VirtAddr(va + i * kPageSize));
    ASSERT_TRUE(t.present);
    EXPECT_EQ(t.page_size, kPageSize);
    EXPECT_NE(t.flags & kPteWrite, 0u);
    EXPECT_NE(t.flags & kPteNx, 0u);
    // The memory is usable through the direct map (host view of the same frame).
    std::memset(arch::phys_to_virt(t.pa), 0x11, kPageSize);
  }
  EXPECT_FALSE(kernel_->translate(VirtAddr(va + 3 * kPageSize)).present);  // the guard page
  EXPECT_EQ(vmalloc_->area_size(a), 3 * kPageSize);
  vmalloc_->free(a);
  vmalloc_->free(b);
}

// vfree unmaps at once but flushes later: the range stays busy until the batched purge.
TEST_F(VmallocTest, FreeIsLazyUntilPurge) {
  BuddyAllocator& buddy = machine_.buddy();
  void* a = vmalloc_->alloc(2 * kPageSize);
  buddy.drain_all();
  const uint64_t free_with_area = buddy.free_pages_total();
  vmalloc_->free(a);
  EXPECT_FALSE(kernel_->translate(VirtAddr(reinterpret_cast<uint64_t>(a))).present);
  EXPECT_EQ(host::flush_stats().kernel_range_flushes, 0u);
  EXPECT_EQ(vmalloc_->stats().lazy_pages, 2u);
  void* b = vmalloc_->alloc(kPageSize);
  EXPECT_NE(b, a);  // the lazily freed range is not reused before the flush
  vmalloc_->purge();
  EXPECT_EQ(host::flush_stats().kernel_range_flushes, 1u);
  EXPECT_EQ(host::flush_stats().last_start.value(), reinterpret_cast<uint64_t>(a));
  EXPECT_EQ(vmalloc_->stats().lazy_pages, 0u);
  buddy.drain_all();
  EXPECT_GE(buddy.free_pages_total(), free_with_area + 2 - 1);
  void* c = vmalloc_->alloc(kPageSize);
  EXPECT_EQ(c, a);  // first fit finds the purged range again
  vmalloc_->free(b);
  vmalloc_->free(c);
}

// Many frees cost one flush per kLazyMaxPages pages, not one per vfree.
TEST_F(VmallocTest, PurgesAreBatched) {
  std::vector<void*> areas;
  for (int i = 0; i < 600; ++i) {
    areas.push_back(vmalloc_->alloc(2 * kPageSize));
    ASSERT_NE(areas.back(), nullptr);
  }
  for (void* area : areas) {
    vmalloc_->free(area);
  }
  // 1200 lazy pages: exactly one purge at the 1024-page mark.
  EXPECT_EQ(host::flush_stats().kernel_range_flushes, 1u);
  EXPECT_EQ(vmalloc_->stats().purges, 1u);
  EXPECT_EQ(vmalloc_->stats().purged_areas, 512u);
  vmalloc_->purge();
  EXPECT_EQ(host::flush_stats().kernel_range_flushes, 2u);
}

// Running out of virtual range purges lazily freed areas and retries.
TEST_F(VmallocTest, ExhaustionPurgesAndRetries) {
  auto small = std::make_unique<Vmalloc>();
  constexpr uint64_t kSmallStart = kStart + (uint64_t{1} << 31);
  ASSERT_TRUE(small->init(&machine_.buddy(), kernel_.get(),
                          VirtRange{VirtAddr(kSmallStart), 8 * kPageSize}));
  void* a = small->alloc(7 * kPageSize);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(small->alloc(kPageSize), nullptr);
  small->free(a);
  void* b = small->alloc(7 * kPageSize);
  EXPECT_EQ(b, a);
  EXPECT_EQ(small->stats().purges, 1u);
  small->free(b);
}

}  // namespace
}  // namespace hvmm::guest::mm
