// Tests of the x86 vCPU set-up helpers: per-vCPU CPUID, PVH entry state, register dumps.
#include <gtest/gtest.h>

#include "hvmm/vmm/boot/boot_data.h"
#include "hvmm/vmm/boot/x86_state.h"
#include "hvmm/vmm/kvm/cpuid.h"
#include "hvmm/vmm/memory/memory_layout.h"

namespace hvmm::vmm {
namespace {

// Leaf 1 gets the APIC id in EBX[31:24] and the CPU count in EBX[23:16]; leaf 0xB's EDX
// the x2APIC id; other leaves and other bits are untouched.
TEST(Cpuid, SetsApicIdPerVcpu) {
  std::vector<kvm_cpuid_entry2> supported(3);
  supported[0].function = 1;
  supported[0].ebx = 0xffff0800;
  supported[1].function = 0xb;
  supported[2].function = 0x80000001;
  supported[2].edx = 0x1234;
  auto entries = cpuid_for_vcpu(supported, 5, 8);
  EXPECT_EQ(entries[0].ebx, 0x05080800u);
  EXPECT_EQ(entries[1].edx, 5u);
  EXPECT_EQ(entries[2].edx, 0x1234u);
}

// The PVH entry state is 32-bit protected mode without paging, flat segments from our GDT.
TEST(X86State, PvhEntryState) {
  kvm_sregs sregs{};
  set_pvh_entry_sregs(sregs);
  EXPECT_EQ(sregs.cr0, 0x11u);
  EXPECT_EQ(sregs.cr4, 0u);
  EXPECT_EQ(sregs.cs.selector, kCodeSelector);
  EXPECT_EQ(sregs.cs.db, 1);
  EXPECT_EQ(sregs.cs.limit, 0xffffffffu);
  EXPECT_EQ(sregs.ds.selector, kDataSelector);
  EXPECT_EQ(sregs.tr.selector, kTssSelector);
  EXPECT_EQ(sregs.gdt.base, kGdtAddress.value());
  kvm_regs regs = pvh_entry_regs(Ipa(0x100000), kStartInfoAddress);
  EXPECT_EQ(regs.rip, 0x100000u);
  EXPECT_EQ(regs.rbx, 0x6000u);
  EXPECT_EQ(regs.rflags, 0x2u);
}

// The dump shows every general register with its value and the control registers.
TEST(X86State, RegisterDump) {
  kvm_regs regs{};
  regs.rax = 0xdeadbeef;
  regs.rip = 0x10003e;
  kvm_sregs sregs{};
  sregs.cr0 = 0x11;
  std::string dump = format_register_dump(regs, sregs);
  EXPECT_NE(dump.find("rax=0x00000000deadbeef"), std::string::npos);
  EXPECT_NE(dump.find("rip=0x000000000010003e"), std::string::npos);
  EXPECT_NE(dump.find("cr0=0x11"), std::string::npos);
  EXPECT_NE(dump.find("r15="), std::string::npos);
}

// RAM goes below the 3 GiB hole and resumes at 4 GiB.
TEST(MemoryLayout, SplitsAroundMmioHole) {
  auto small = ram_layout(128 << 20);
  ASSERT_EQ(small.size(), 1u);
  EXPECT_EQ(small[0].range, (IpaRange{Ipa(0), 128 << 20}));
  auto large = ram_layout(uint64_t{5} << 30);
  ASSERT_EQ(large.size(), 2u);
  EXPECT_EQ(large[0].range, (IpaRange{Ipa(0), kMmioHoleStart}));
  EXPECT_EQ(large[1].range, (IpaRange{Ipa(kMmioHoleEnd), uint64_t{2} << 30}));
  EXPECT_EQ(large[1].offset, HostOffset(kMmioHoleStart));
  EXPECT_TRUE(inside_ram(large, IpaRange{Ipa(kMmioHoleEnd), 4096}));
  EXPECT_FALSE(inside_ram(large, IpaRange{Ipa(kMmioHoleStart - 4096), 8192}));
}

}  // namespace
}  // namespace hvmm::vmm
