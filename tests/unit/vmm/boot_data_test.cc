// Tests of the PVH boot data: hvm_start_info fields, memory map, modules, command line and
// the placement of modules away from the kernel.
#include "hvmm/vmm/boot/boot_data.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace hvmm::vmm {
namespace {

using testing::FakeGuestMemory;
using testing::PvhElfBuilder;

constexpr uint64_t kRam = 16 << 20;

// A parsed one-segment kernel at 1 MiB.
PvhKernel test_kernel() {
  return *parse_pvh_kernel(PvhElfBuilder().build());
}

// The start info carries the magic, version 1, and pointers to what follows it.
TEST(BootData, StartInfoHeader) {
  FakeGuestMemory memory(kRam);
  BootInfo info{"console=ttyS0", ram_layout(kRam), {}};
  auto start = write_boot_data(memory, info);
  ASSERT_TRUE(start.ok()) << start.error().message;
  EXPECT_EQ(*start, kStartInfoAddress);
  uint64_t base = kStartInfoAddress.value();
  EXPECT_EQ(memory.load<uint32_t>(base + 0), kStartInfoMagic);
  EXPECT_EQ(memory.load<uint32_t>(base + 4), 1u);
  EXPECT_EQ(memory.load<uint32_t>(base + 12), 0u);  // no modules
  EXPECT_EQ(memory.load<uint64_t>(base + 16), 0u);
  EXPECT_EQ(memory.load<uint64_t>(base + 24), kCmdlineAddress.value());
  EXPECT_EQ(memory.load<uint64_t>(base + 40), kMemmapAddress.value());
  EXPECT_EQ(memory.load<uint32_t>(base + 48), 1u);
  EXPECT_STREQ(reinterpret_cast<const char*>(memory.bytes.data() + kCmdlineAddress.value()),
               "console=ttyS0");
}

// The memory map lists every RAM region as type 1 and sums to the RAM size (5 GiB: two
// entries around the MMIO hole).
TEST(BootData, MemoryMapCoversRam) {
  FakeGuestMemory memory(kRam);
  const uint64_t ram_size = uint64_t{5} << 30;
  BootInfo info{"", ram_layout(ram_size), {}};
  ASSERT_TRUE(write_boot_data(memory, info).ok());
  ASSERT_EQ(memory.load<uint32_t>(kStartInfoAddress.value() + 48), 2u);
  uint64_t total = 0;
  for (uint64_t i = 0; i < 2; ++i) {
    uint64_t entry = kMemmapAddress.value() + i * 24;
    EXPECT_EQ(memory.load<uint32_t>(entry + 16), 1u);
    total += memory.load<uint64_t>(entry + 8);
  }
  EXPECT_EQ(total, ram_size);
  EXPECT_EQ(memory.load<uint64_t>(kMemmapAddress.value() + 24), kMmioHoleEnd);
}

// A module appears in the module list with its address and size.
TEST(BootData, ModuleList) {
  FakeGuestMemory memory(kRam);
  BootInfo info{"", ram_layout(kRam), {BootModule{IpaRange{Ipa(0xf00000), 0x1234}}}};
  ASSERT_TRUE(write_boot_data(memory, info).ok());
  EXPECT_EQ(memory.load<uint32_t>(kStartInfoAddress.value() + 12), 1u);
  EXPECT_EQ(memory.load<uint64_t>(kStartInfoAddress.value() + 16), kModlistAddress.value());
  EXPECT_EQ(memory.load<uint64_t>(kModlistAddress.value()), 0xf00000u);
  EXPECT_EQ(memory.load<uint64_t>(kModlistAddress.value() + 8), 0x1234u);
}

// The GDT holds the flat code and data descriptors the entry state selects.
TEST(BootData, GdtDescriptors) {
  FakeGuestMemory memory(kRam);
  ASSERT_TRUE(write_boot_data(memory, BootInfo{"", ram_layout(kRam), {}}).ok());
  EXPECT_EQ(memory.load<uint64_t>(kGdtAddress.value() + kCodeSelector), 0x00cf9b000000ffffu);
  EXPECT_EQ(memory.load<uint64_t>(kGdtAddress.value() + kDataSelector), 0x00cf93000000ffffu);
}

// A command line of 4095 bytes fits; 4096 does not, and the error gives the length.
TEST(BootData, CommandLineLimit) {
  EXPECT_TRUE(check_cmdline(std::string(kMaxCmdlineBytes - 1, 'x')).ok());
  auto too_long = check_cmdline(std::string(kMaxCmdlineBytes, 'x'));
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().message.find("4096 bytes long"), std::string::npos);
}

// Modules go to the top of low RAM, page aligned.
TEST(BootData, ModulePlacedAtTopOfLowRam) {
  auto range = place_module(0x1800, ram_layout(kRam), test_kernel());
  ASSERT_TRUE(range.ok()) << range.error().message;
  EXPECT_EQ(range->start, Ipa(kRam - 0x2000));
  EXPECT_EQ(range->size, 0x1800u);
}

// A module that would reach down into the kernel is refused.
TEST(BootData, ModuleCollidingWithKernelRefused) {
  auto range = place_module(kRam - 0x100000, ram_layout(kRam), test_kernel());
  ASSERT_FALSE(range.ok());
  EXPECT_NE(range.error().message.find("overlap the kernel"), std::string::npos);
}

// A module larger than RAM is refused with its size.
TEST(BootData, ModuleLargerThanRamRefused) {
  auto range = place_module(kRam * 2, ram_layout(kRam), test_kernel());
  ASSERT_FALSE(range.ok());
  EXPECT_NE(range.error().message.find("does not fit"), std::string::npos);
}

}  // namespace
}  // namespace hvmm::vmm
