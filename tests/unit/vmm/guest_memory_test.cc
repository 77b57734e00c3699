// Tests of the memfd backing: its two mappings share pages, release() punches real holes,
// and the extent and mincore queries report exactly the allocated pages.
#include "hvmm/vmm/memory/guest_memory.h"

#include <gtest/gtest.h>

#include <vector>

namespace hvmm::vmm {
namespace {

constexpr uint64_t kSize = 1 << 20;

// A fresh backing of kSize bytes.
std::unique_ptr<GuestMemory> make_memory() {
  auto memory = GuestMemory::create(kSize, "guest-memory-test");
  EXPECT_TRUE(memory.ok()) << memory.error().message;
  return memory.ok() ? std::move(*memory) : nullptr;
}

// A fresh memfd has nothing allocated; a write through the alias is seen through the
// primary mapping at the same offset, and allocates exactly that page.
TEST(GuestMemory, MappingsSharePagesAndStartEmpty) {
  auto memory = make_memory();
  ASSERT_NE(memory, nullptr);
  EXPECT_TRUE(memory->allocated_extents()->empty());
  EXPECT_NE(memory->guest_base(), memory->alias_base());
  (*memory->host_pointer(HostOffset(0x3000), 1))[5] = 0x7e;
  EXPECT_EQ(memory->guest_base()[0x3005], 0x7e);
  EXPECT_EQ(*memory->allocated_extents(),
            (std::vector<HostRange>{{HostOffset(0x3000), kPageSize}}));
  EXPECT_EQ(*memory->allocated_bytes(), kPageSize);
}

// release() punches a hole: the page is no longer allocated (SEEK_DATA, mincore on both
// mappings), reads zero when touched again, and its neighbours keep their data.
TEST(GuestMemory, ReleasePunchesAHole) {
  auto memory = make_memory();
  ASSERT_NE(memory, nullptr);
  for (uint64_t page = 0; page < 3; ++page)
    memory->guest_base()[page * kPageSize] = static_cast<uint8_t>(0x10 + page);
  ASSERT_TRUE(memory->release(HostOffset(kPageSize), kPageSize).ok());
  EXPECT_EQ(*memory->allocated_extents(),
            (std::vector<HostRange>{{HostOffset(0), kPageSize}, {HostOffset(0x2000), kPageSize}}));
  for (bool primary : {true, false}) {
    auto resident = memory->mincore_pages(primary);
    ASSERT_TRUE(resident.ok());
    EXPECT_TRUE((*resident)[0]);
    EXPECT_FALSE((*resident)[1]) << (primary ? "primary" : "alias");
    EXPECT_TRUE((*resident)[2]);
  }
  EXPECT_EQ(memory->alias_base()[0x2000], 0x12);
  EXPECT_EQ(memory->alias_base()[kPageSize], 0);  // this read fills the hole again
  EXPECT_EQ(*memory->allocated_bytes(), 3 * kPageSize);
}

// Releasing a hole again, or nothing, succeeds; unaligned or out-of-range releases are
// refused with the range named.
TEST(GuestMemory, ReleaseChecksItsRange) {
  auto memory = make_memory();
  ASSERT_NE(memory, nullptr);
  EXPECT_TRUE(memory->release(HostOffset(0), kSize).ok());
  EXPECT_TRUE(memory->release(HostOffset(0), 0).ok());
  auto unaligned = memory->release(HostOffset(0x800), kPageSize);
  ASSERT_FALSE(unaligned.ok());
  EXPECT_NE(unaligned.error().message.find("[0x800, 0x1800)"), std::string::npos);
  auto beyond = memory->release(HostOffset(kSize - kPageSize), 2 * kPageSize);
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.error().code, ErrorCode::kOutOfRange);
  EXPECT_FALSE(memory->host_pointer(HostOffset(kSize), 1).ok());
  EXPECT_FALSE(memory->guest_pointer(HostOffset(kSize), 1).ok());
}

}  // namespace
}  // namespace hvmm::vmm
