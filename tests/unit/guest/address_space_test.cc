// Tests of user address spaces: mmap/munmap/brk bookkeeping and demand paging.
#include "hvmm/guest/mm/address_space.h"

#include <gtest/gtest.h>

#include <memory>

#include "mm_fixture.h"

namespace hvmm::guest::mm {
namespace {

using testing::FakeMachine;

constexpr uint64_t kBrkBase = 0x10000000;

// A kernel table, a VMA cache and one address space.
class AddressSpaceTest : public ::testing::Test {
 protected:
  AddressSpaceTest() {
    EXPECT_TRUE(kernel_->init(&machine_.buddy()));
    EXPECT_TRUE(vma_cache_->init(&machine_.buddy(), "vma", sizeof(Vma), 8, kSlabNone));
    EXPECT_TRUE(space_->init(&machine_.buddy(), vma_cache_.get(), *kernel_, VirtAddr(kBrkBase)));
  }
  FakeMachine machine_;
  std::unique_ptr<PageTable> kernel_ = std::make_unique<PageTable>();
  std::unique_ptr<KmemCache> vma_cache_ = std::make_unique<KmemCache>();
  std::unique_ptr<AddressSpace> space_ = std::make_unique<AddressSpace>();
};

// mmap places areas top-down below kUserMmapTop, honours free hints, refuses busy fixed ones.
TEST_F(AddressSpaceTest, MmapPlacement) {
  const MmResult a = space_->mmap(VirtAddr(0), 3 * kPageSize, kVmRead | kVmWrite, false);
  ASSERT_TRUE(a.ok);
  EXPECT_EQ(a.address.value(), kUserMmapTop.value() - 3 * kPageSize);
  const MmResult b = space_->mmap(VirtAddr(0), kPageSize, kVmRead, false);
  EXPECT_EQ(b.address.value(), a.address.value() - kPageSize);
  const MmResult c = space_->mmap(VirtAddr(0x20000000), kPageSize, kVmRead, true);
  ASSERT_TRUE(c.ok);
  EXPECT_EQ(c.address.value(), 0x20000000u);
  EXPECT_FALSE(space_->mmap(VirtAddr(0x20000000), kPageSize, kVmRead, true).ok);
  const MmResult d = space_->mmap(VirtAddr(0x20000000), kPageSize, kVmRead, false);
  ASSERT_TRUE(d.ok);
  EXPECT_NE(d.address.value(), 0x20000000u);
  EXPECT_FALSE(space_->mmap(VirtAddr(0), 0, kVmRead, false).ok);
  EXPECT_EQ(space_->vmas().count(), 4u);
  EXPECT_TRUE(space_->vmas().validate());
}

// Faults: outside areas SEGV, wrong access permission, otherwise a zeroed page is mapped.
TEST_F(AddressSpaceTest, FaultDecisionsAndDemandZero) {
  const uint64_t rw =
      space_->mmap(VirtAddr(0x30000000), 4 * kPageSize, kVmRead | kVmWrite, true).address.value();
  const uint64_t ro = space_->mmap(VirtAddr(0x40000000), kPageSize, kVmRead, true).address.value();
  EXPECT_EQ(space_->decide_fault(VirtAddr(0x50000000), kFaultRead), FaultDecision::kSegv);
  EXPECT_EQ(space_->decide_fault(VirtAddr(ro), kFaultWrite), FaultDecision::kPermissionFault);
  EXPECT_EQ(space_->decide_fault(VirtAddr(rw), kFaultExec), FaultDecision::kPermissionFault);
  EXPECT_EQ(space_->decide_fault(VirtAddr(rw + 5), kFaultWrite), FaultDecision::kMapZeroPage);
  ASSERT_EQ(space_->handle_fault(VirtAddr(rw + 5), kFaultWrite), FaultDecision::kMapZeroPage);
  const Translation t = space_->page_table().translate(VirtAddr(rw + 5));
  ASSERT_TRUE(t.present);
  EXPECT_EQ(t.flags & (kPteUser | kPteWrite | kPteNx | kPteOwned),
            kPteUser | kPteWrite | kPteNx | kPteOwned);
  const auto* bytes = static_cast<const uint8_t*>(arch::phys_to_virt(t.pa - 5));
  for (uint64_t i = 0; i < kPageSize; ++i) {
    ASSERT_EQ(bytes[i], 0u);
  }
  EXPECT_EQ(space_->decide_fault(VirtAddr(rw), kFaultWrite | kFaultPresent),
            FaultDecision::kSpurious);
  ASSERT_EQ(space_->handle_fault(VirtAddr(ro), kFaultRead), FaultDecision::kMapZeroPage);
  EXPECT_EQ(space_->page_table().translate(VirtAddr(ro)).flags & kPteWrite, 0u);
  EXPECT_EQ(space_->stats().zero_pages_mapped, 2u);
  EXPECT_EQ(space_->stats().resident_pages, 2u);
}

// munmap in the middle of an area splits it and frees the frames after release().
TEST_F(AddressSpaceTest, MunmapSplitsAndFreesFrames) {
  const uint64_t base =
      space_->mmap(VirtAddr(0x30000000), 8 * kPageSize, kVmRead | kVmWrite, true).address.value();
  for (uint64_t i = 0; i < 8; ++i) {
    ASSERT_EQ(space_->handle_fault(VirtAddr(base + i * kPageSize), kFaultWrite),
              FaultDecision::kMapZeroPage);
  }
  BuddyAllocator& buddy = machine_.buddy();
  buddy.drain_all();
  const uint64_t free_before = buddy.free_pages_total();
  MmuGather gather(&buddy);
  ASSERT_TRUE(space_->munmap(VirtAddr(base + 2 * kPageSize), 3 * kPageSize, gather).ok);
  EXPECT_EQ(gather.start().value(), base + 2 * kPageSize);
  EXPECT_EQ(gather.end().value(), base + 5 * kPageSize);
  gather.release();
  buddy.drain_all();
  EXPECT_EQ(buddy.free_pages_total(), free_before + 3);
  EXPECT_EQ(space_->vmas().count(), 2u);
  EXPECT_EQ(space_->decide_fault(VirtAddr(base + 3 * kPageSize), kFaultRead), FaultDecision::kSegv);
  EXPECT_EQ(space_->decide_fault(VirtAddr(base + 6 * kPageSize), kFaultRead),
            FaultDecision::kSpurious);
  EXPECT_EQ(space_->stats().resident_pages, 5u);
}

// brk grows a heap area from brk_base, refuses to run into a mapping, and shrinks by unmapping.
TEST_F(AddressSpaceTest, BrkGrowsAndShrinks) {
  MmuGather gather(&machine_.buddy());
  EXPECT_EQ(space_->brk(VirtAddr(0), gather).address.value(), kBrkBase);
  ASSERT_TRUE(space_->brk(VirtAddr(kBrkBase + 3 * kPageSize + 10), gather).ok);
  EXPECT_EQ(space_->decide_fault(VirtAddr(kBrkBase + 3 * kPageSize), kFaultWrite),
            FaultDecision::kMapZeroPage);
  ASSERT_EQ(space_->handle_fault(VirtAddr(kBrkBase), kFaultWrite), FaultDecision::kMapZeroPage);
  ASSERT_TRUE(space_->mmap(VirtAddr(kBrkBase + 16 * kPageSize), kPageSize, kVmRead, true).ok);
  EXPECT_FALSE(space_->brk(VirtAddr(kBrkBase + 20 * kPageSize), gather).ok);
  ASSERT_TRUE(space_->brk(VirtAddr(kBrkBase + 16 * kPageSize), gather).ok);
  ASSERT_TRUE(space_->brk(VirtAddr(kBrkBase), gather).ok);
  EXPECT_EQ(space_->decide_fault(VirtAddr(kBrkBase), kFaultRead), FaultDecision::kSegv);
  EXPECT_FALSE(space_->page_table().translate(VirtAddr(kBrkBase)).present);
  EXPECT_EQ(space_->stats().resident_pages, 0u);
  EXPECT_FALSE(space_->brk(VirtAddr(kBrkBase - kPageSize), gather).ok);
}

// destroy returns every frame, table and VMA.
TEST_F(AddressSpaceTest, DestroyReturnsEverything) {
  BuddyAllocator& buddy = machine_.buddy();
  buddy.drain_all();
  const uint64_t free_before = buddy.free_pages_total();
  const uint64_t base =
      space_->mmap(VirtAddr(0), 64 * kPageSize, kVmRead | kVmWrite, false).address.value();
  for (uint64_t i = 0; i < 64; i += 3) {
    ASSERT_EQ(space_->handle_fault(VirtAddr(base + i * kPageSize), kFaultWrite),
              FaultDecision::kMapZeroPage);
  }
  MmuGather gather(&buddy);
  space_->destroy(gather);
  EXPECT_TRUE(gather.tables_freed());
  gather.release();
  vma_cache_->shrink();
  EXPECT_EQ(vma_cache_->stats().slabs, 0u);
  buddy.drain_all();
  EXPECT_EQ(buddy.free_pages_total(), free_before + 1);  // + the address space's root
}

}  // namespace
}  // namespace hvmm::guest::mm
