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

// Hand-assembled raw descriptors (ARM ARM D8.3, stage-2 block/page and table formats). Each
// literal is derived field by field in its comment, never from hvmm's own encoder.

// Normal RAM page, read-write, executable, inner shareable, write-back, AF set, at 0x8_1234_5000:
//   [0] valid 1 = 0x001, [1] page 1 = 0x002, MemAttr[5:2] 0b1111 (outer WB, inner WB) = 0x03c,
//   S2AP[7:6] 0b11 (RW) = 0x0c0, SH[9:8] 0b11 (inner) = 0x300, AF[10] = 0x400: low bits 0x7ff;
//   OA[47:12] = 0x8_1234_5000; XN[54:53] 0b00; software [58:55] 0 (resident).
constexpr uint64_t kRamPage = 0x0000'0008'1234'57ff;
// Device-nGnRE page, read-write, execute-never, outer shareable, AF set, at 0x9000_0000:
//   valid + page = 0x003, MemAttr 0b0001 (Device, nGnRE) = 0x004, S2AP 0b11 = 0x0c0,
//   SH 0b10 (outer) = 0x200, AF = 0x400: low bits 0x6c7; OA = 0x9000_0000;
//   XN[54:53] 0b10 (XN at EL1 and EL0) = 0x0040_0000_0000_0000.
constexpr uint64_t kDevicePage = 0x0040'0000'9000'06c7;
// 2 MiB block of normal RAM (as kRamPage) at 0x4020_0000 (ARM level 2, hvmm level 1):
//   valid 1 with bit [1] clear (block) = 0x001, + 0x03c + 0x0c0 + 0x300 + 0x400: low bits 0x7fd.
constexpr uint64_t kRamBlock2M = 0x0000'0000'4020'07fd;
// Table descriptor for a next-level table at 0x7f12_3456_7000: valid + table = 0x003, the
// table address in [47:12], every attribute bit zero.
constexpr uint64_t kTable = 0x0000'7f12'3456'7003;
// kRamPage ballooned and write-tracked: valid cleared (0x7fe), software [56:55] = 0b01
// (ballooned) = 0x0080_0000_0000_0000, [57] write-tracked = 0x0200_0000_0000_0000.
constexpr uint64_t kRamPageBallooned = 0x0280'0008'1234'57fe;

constexpr Attributes kDevice{Permissions::kReadWrite, MemoryType::kDeviceNGnRE,
                             Shareability::kOuterShareable, false};

// The encoder produces exactly the hand-assembled descriptors.
TEST(DescriptorTest, EncodesHandAssembledDescriptors) {
  EXPECT_EQ(Descriptor::leaf(0, HostOffset(0x8'1234'5000), kRamAttributes, {}, true).raw(),
            kRamPage);
  EXPECT_EQ(Descriptor::leaf(0, HostOffset(0x9000'0000), kDevice, {}, true).raw(), kDevicePage);
  EXPECT_EQ(Descriptor::leaf(1, HostOffset(0x4020'0000), kRamAttributes, {}, true).raw(),
            kRamBlock2M);
  EXPECT_EQ(Descriptor::table(0x7f12'3456'7000).raw(), kTable);
  EXPECT_EQ(Descriptor::leaf(0, HostOffset(0x8'1234'5000), kRamAttributes,
                             {.backing = Backing::kBallooned, .write_tracked = true}, true)
                .raw(),
            kRamPageBallooned);
}

// The decoder reads the hand-assembled descriptors back into their fields.
TEST(DescriptorTest, DecodesHandAssembledDescriptors) {
  EXPECT_EQ(Descriptor(kRamPage).attributes(), kRamAttributes);
  EXPECT_EQ(Descriptor(kRamPage).output(), HostOffset(0x8'1234'5000));
  EXPECT_TRUE(Descriptor(kRamPage).is_leaf(0));
  EXPECT_EQ(Descriptor(kDevicePage).attributes(), kDevice);
  EXPECT_TRUE(Descriptor(kRamBlock2M).is_leaf(1));
  EXPECT_FALSE(Descriptor(kRamBlock2M).is_table(1));
  EXPECT_TRUE(Descriptor(kTable).is_table(1));
  EXPECT_EQ(Descriptor(kTable).address(), 0x7f12'3456'7000u);
  const PageState ballooned = Descriptor(kRamPageBallooned).state();
  EXPECT_EQ(ballooned.backing, Backing::kBallooned);
  EXPECT_TRUE(ballooned.write_tracked);
  EXPECT_FALSE(Descriptor(kRamPageBallooned).valid());
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
