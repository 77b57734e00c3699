// x2APIC driver: every register is an MSR at 0x800 + (xAPIC offset >> 4) (Intel SDM vol. 3,
// 11.12).
#include "hvmm/guest/arch/apic.h"

#include "hvmm/guest/arch/cpu.h"

namespace hvmm::guest::arch {
namespace {

constexpr uint32_t kMsrX2apicId = 0x802;
constexpr uint32_t kMsrX2apicTpr = 0x808;
constexpr uint32_t kMsrX2apicEoi = 0x80b;
constexpr uint32_t kMsrX2apicSvr = 0x80f;
constexpr uint32_t kMsrX2apicIcr = 0x830;
constexpr uint32_t kMsrX2apicLvtTimer = 0x832;
constexpr uint32_t kMsrX2apicInitCount = 0x838;
constexpr uint32_t kMsrX2apicDivide = 0x83e;
constexpr uint64_t kApicBaseEnable = 1u << 11;
constexpr uint64_t kApicBaseX2 = 1u << 10;
constexpr uint64_t kIcrInit = 5u << 8;
constexpr uint64_t kIcrStartup = 6u << 8;
constexpr uint64_t kIcrAssert = 1u << 14;
constexpr uint64_t kIcrLevel = 1u << 15;
constexpr uint32_t kLvtMasked = 1u << 16;
constexpr uint32_t kLvtPeriodic = 1u << 17;
constexpr uint8_t kSpuriousVector = 0xff;

}  // namespace

// CPUID.1:ECX bit 21.
bool x2apic_supported() {
  return (cpuid(1).ecx & (1u << 21)) != 0;
}

// Switch to x2APIC mode (xAPIC enable first, then EXTD, as the SDM requires) and enable it.
bool apic_init_this_cpu() {
  if (!x2apic_supported())
    return false;
  uint64_t base = rdmsr(kMsrApicBase);
  if ((base & kApicBaseEnable) == 0)
    wrmsr(kMsrApicBase, base | kApicBaseEnable);
  wrmsr(kMsrApicBase, base | kApicBaseEnable | kApicBaseX2);
  wrmsr(kMsrX2apicTpr, 0);
  wrmsr(kMsrX2apicSvr, 0x100 | kSpuriousVector);
  return true;
}

// The x2APIC id of the calling CPU.
uint32_t apic_id() {
  return static_cast<uint32_t>(rdmsr(kMsrX2apicId));
}

// Acknowledge the interrupt being serviced.
void apic_eoi() {
  wrmsr(kMsrX2apicEoi, 0);
}

// Fixed delivery, physical destination mode, no shorthand.
void apic_send_ipi(uint32_t dest, uint8_t vector) {
  wrmsr(kMsrX2apicIcr, (uint64_t{dest} << 32) | vector);
}

// INIT, level assert (x2APIC has no de-assert message).
void apic_send_init(uint32_t dest) {
  wrmsr(kMsrX2apicIcr, (uint64_t{dest} << 32) | kIcrInit | kIcrAssert | kIcrLevel);
}

// Startup IPI with the trampoline page number as vector.
void apic_send_sipi(uint32_t dest, uint8_t page) {
  wrmsr(kMsrX2apicIcr, (uint64_t{dest} << 32) | kIcrStartup | kIcrAssert | page);
}

// Periodic LVT timer, divide by 1.
void apic_timer_start_periodic(uint8_t vector, uint32_t count) {
  wrmsr(kMsrX2apicDivide, 0xb);  // divide by 1
  wrmsr(kMsrX2apicLvtTimer, kLvtPeriodic | vector);
  wrmsr(kMsrX2apicInitCount, count);
}

// Mask the timer and clear its count.
void apic_timer_stop() {
  wrmsr(kMsrX2apicLvtTimer, kLvtMasked);
  wrmsr(kMsrX2apicInitCount, 0);
}

}  // namespace hvmm::guest::arch
