// Stage-2 descriptors encode and decode every field at the ARM ARM's bit positions.
#include <gtest/gtest.h>

#include <random>

#include "hvmm/stage2/descriptor.h"

namespace hvmm::stage2 {
namespace {

// A read-only, non-executable device page has S2AP=01, MemAttr=0001, XN=10, SH=00.
TEST(DescriptorTest, DevicePageBits) {
  const Attributes device{Permissions::kReadOnly, MemoryType::kDeviceNGnRE,
                          Shareability::kNonShareable, false};
  const Descriptor d = Descriptor::leaf(0, HostOffset(0xabc000), device, {}, false);
  EXPECT_EQ(d.raw(), 0x0040'0000'00ab'c000 | 0b01 << 6 | 0b0001 << 2 | 0b11);
  EXPECT_TRUE(d.valid());
  EXPECT_TRUE(d.is_leaf(0));
  EXPECT_FALSE(d.young());
}

// A page descriptor at level 0 is not a table, but the same bits at level 1 are.
TEST(DescriptorTest, TypeBitDependsOnLevel) {
  const Descriptor page = Descriptor::leaf(0, HostOffset(0x5000), kRamAttributes, {}, true);
  EXPECT_FALSE(page.is_table(0));
  EXPECT_TRUE(page.is_table(1));
  EXPECT_FALSE(page.at_level(1).is_table(1));
  EXPECT_EQ(page.at_level(1).at_level(0), page);
}

// Software bits carry backing, write-tracked and pinned; only resident leaves are valid.
TEST(DescriptorTest, SoftwareStateBits) {
  const PageState state{Backing::kReclaimed, true, false};
  const Descriptor d = Descriptor::leaf(1, HostOffset(0x20'0000), kRamAttributes, state, true);
  EXPECT_EQ(d.raw() & bits::kSoftwareMask, uint64_t{0b0110} << 55);
  EXPECT_FALSE(d.valid());
  EXPECT_FALSE(d.empty());
  EXPECT_TRUE(d.is_leaf(1));
  EXPECT_EQ(d.state(), state);
  EXPECT_EQ(d.output(), HostOffset(0x20'0000));
  EXPECT_TRUE(d.with_state({}).valid());
}

// Random leaves decode back to the fields they were encoded from.
TEST(DescriptorTest, RandomRoundTrip) {
  std::mt19937_64 rng(0x5eed);
  constexpr MemoryType kTypes[] = {MemoryType::kDeviceNGnRnE, MemoryType::kDeviceNGnRE,
                                   MemoryType::kNormalNonCacheable, MemoryType::kNormalWriteBack};
  constexpr Shareability kShare[] = {Shareability::kNonShareable, Shareability::kOuterShareable,
                                     Shareability::kInnerShareable};
  for (int i = 0; i < 10000; ++i) {
    const unsigned level = rng() % 3;
    const HostOffset output(rng() & bits::kAddressMask & ~(level_size(level) - 1));
    const Attributes attrs{static_cast<Permissions>(rng() % 4), kTypes[rng() % 4],
                           kShare[rng() % 3], rng() % 2 == 0};
    const PageState state{static_cast<Backing>(rng() % 3), rng() % 2 == 0, rng() % 2 == 0};
    const bool young = rng() % 2 == 0;
    const Descriptor d = Descriptor::leaf(level, output, attrs, state, young);
    ASSERT_EQ(d.output(), output);
    ASSERT_EQ(d.attributes(), attrs);
    ASSERT_EQ(d.state(), state);
    ASSERT_EQ(d.young(), young);
    ASSERT_EQ(d.valid(), state.backing == Backing::kResident);
    ASSERT_TRUE(d.is_leaf(level));
  }
}

}  // namespace
}  // namespace hvmm::stage2
