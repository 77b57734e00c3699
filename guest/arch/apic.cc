// Local APIC driver. x2APIC mode (every register an MSR at 0x800 + (offset >> 4), Intel SDM
// vol. 3, 11.12) when the CPU offers it; otherwise xAPIC mode through the MMIO page at
// kXapicPhys, which the kernel maps uncached and hands over with apic_set_mmio().
#include "hvmm/guest/arch/apic.h"

#include "hvmm/guest/arch/cpu.h"

namespace hvmm::guest::arch {
namespace {

// Register offsets in the xAPIC page (the x2APIC MSR is 0x800 + offset / 16).
constexpr uint32_t kRegId = 0x20;
constexpr uint32_t kRegTpr = 0x80;
constexpr uint32_t kRegEoi = 0xb0;
constexpr uint32_t kRegSvr = 0xf0;
constexpr uint32_t kRegIcrLow = 0x300;
constexpr uint32_t kRegIcrHigh = 0x310;
constexpr uint32_t kRegLvtTimer = 0x320;
constexpr uint32_t kRegInitCount = 0x380;
constexpr uint32_t kRegDivide = 0x3e0;
constexpr uint64_t kApicBaseEnable = 1u << 11;
constexpr uint64_t kApicBaseX2 = 1u << 10;
constexpr uint64_t kIcrInit = 5u << 8;
constexpr uint64_t kIcrStartup = 6u << 8;
constexpr uint64_t kIcrPending = 1u << 12;
constexpr uint64_t kIcrAssert = 1u << 14;
constexpr uint64_t kIcrLevel = 1u << 15;
constexpr uint32_t kLvtMasked = 1u << 16;
constexpr uint32_t kLvtPeriodic = 1u << 17;
constexpr uint8_t kSpuriousVector = 0xff;

volatile uint32_t* g_mmio = nullptr;  // the mapped xAPIC page, when not in x2APIC mode
bool g_x2apic = false;

// Write an APIC register in the current mode.
void write_reg(uint32_t offset, uint32_t value) {
  if (g_x2apic)
    wrmsr(0x800 + (offset >> 4), value);
  else
    g_mmio[offset / 4] = value;
}

// Read an APIC register in the current mode.
uint32_t read_reg(uint32_t offset) {
  return g_x2apic ? static_cast<uint32_t>(rdmsr(0x800 + (offset >> 4))) : g_mmio[offset / 4];
}

// Send an IPI: one 64-bit ICR write in x2APIC mode; destination then command in xAPIC mode,
// waiting for the previous IPI to leave.
void write_icr(uint32_t dest, uint32_t command) {
  if (g_x2apic) {
    wrmsr(0x800 + (kRegIcrLow >> 4), (uint64_t{dest} << 32) | command);
    return;
  }
  while (g_mmio[kRegIcrLow / 4] & kIcrPending)
    pause();
  g_mmio[kRegIcrHigh / 4] = dest << 24;
  g_mmio[kRegIcrLow / 4] = command;
}

}  // namespace

// CPUID.1:ECX bit 21.
bool x2apic_supported() {
  return (cpuid(1).ecx & (1u << 21)) != 0;
}

// x2APIC, or an xAPIC (CPUID.1:EDX bit 9) whose page has been mapped.
bool apic_available() {
  return x2apic_supported() || (g_mmio != nullptr && (cpuid(1).edx & (1u << 9)) != 0);
}

// Remember where the xAPIC page is mapped.
void apic_set_mmio(void* va) {
  g_mmio = static_cast<volatile uint32_t*>(va);
}

// Enable the APIC: x2APIC (xAPIC enable first, then EXTD, as the SDM requires) or xAPIC.
bool apic_init_this_cpu() {
  if (!apic_available())
    return false;
  g_x2apic = x2apic_supported();
  uint64_t base = rdmsr(kMsrApicBase);
  if ((base & kApicBaseEnable) == 0)
    wrmsr(kMsrApicBase, base | kApicBaseEnable);
  if (g_x2apic)
    wrmsr(kMsrApicBase, base | kApicBaseEnable | kApicBaseX2);
  write_reg(kRegTpr, 0);
  write_reg(kRegSvr, 0x100 | kSpuriousVector);
  return true;
}

// The calling CPU's APIC id.
uint32_t apic_id() {
  return g_x2apic ? read_reg(kRegId) : read_reg(kRegId) >> 24;
}

// Acknowledge the interrupt being serviced.
void apic_eoi() {
  write_reg(kRegEoi, 0);
}

// Fixed delivery, physical destination mode, no shorthand.
void apic_send_ipi(uint32_t dest, uint8_t vector) {
  write_icr(dest, vector);
}

// INIT, level assert.
void apic_send_init(uint32_t dest) {
  write_icr(dest, kIcrInit | kIcrAssert | kIcrLevel);
}

// Startup IPI with the trampoline page number as vector.
void apic_send_sipi(uint32_t dest, uint8_t page) {
  write_icr(dest, kIcrStartup | kIcrAssert | page);
}

// Periodic LVT timer, divide by 1.
void apic_timer_start_periodic(uint8_t vector, uint32_t count) {
  write_reg(kRegDivide, 0xb);
  write_reg(kRegLvtTimer, kLvtPeriodic | vector);
  write_reg(kRegInitCount, count);
}

// Mask the timer and clear its count.
void apic_timer_stop() {
  write_reg(kRegLvtTimer, kLvtMasked);
  write_reg(kRegInitCount, 0);
}

}  // namespace hvmm::guest::arch
