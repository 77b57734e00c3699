// IOAPIC driver: indirect register access through IOREGSEL (0x00) and IOWIN (0x10); register
// 0x01 is the version (bits 16-23: highest redirection entry), 0x10 + 2n / 0x11 + 2n the low
// and high halves of pin n's redirection entry (82093AA datasheet, 3.2).
#include "hvmm/guest/ioapic.h"

#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/mm/spinlock.h"

namespace hvmm::guest {
namespace {

constexpr uint32_t kRegSelect = 0x00 / 4;
constexpr uint32_t kRegWindow = 0x10 / 4;
constexpr uint32_t kRegVersion = 0x01;
constexpr uint32_t kRegRedirBase = 0x10;
constexpr uint32_t kRedirMasked = 1u << 16;
// The 8259 PICs' interrupt mask registers (OCW1), master and slave.
constexpr uint16_t kPicMasterMask = 0x21;
constexpr uint16_t kPicSlaveMask = 0xa1;

volatile uint32_t* g_regs = nullptr;
unsigned g_pins = 0;
mm::SpinLock g_lock;

// Read an indirect register (the caller holds g_lock).
uint32_t read_indirect(uint32_t reg) {
  g_regs[kRegSelect] = reg;
  return g_regs[kRegWindow];
}

// Write an indirect register (the caller holds g_lock).
void write_indirect(uint32_t reg, uint32_t value) {
  g_regs[kRegSelect] = reg;
  g_regs[kRegWindow] = value;
}

}  // namespace

// Mask both 8259 PICs, then map the window and read the version register. KVM's in-kernel
// irqchip routes every GSI to the PIC as well as the IOAPIC, and the BSP's LINT0 starts in
// ExtINT mode: an unprogrammed PIC (vector base 0) would deliver a device's IRQ n as
// exception n (IRQ 6 arrives as #UD). Devices are routed through the IOAPIC only.
bool ioapic_init() {
  if (g_regs != nullptr)
    return g_pins != 0;
  arch::outb(kPicMasterMask, 0xff);
  arch::outb(kPicSlaveMask, 0xff);
  g_regs = static_cast<volatile uint32_t*>(ioremap(PhysAddr(kIoapicPhys), 0x20));
  if (g_regs == nullptr) {
    printk("ioapic: cannot map %lx\n", kIoapicPhys);
    return false;
  }
  mm::SpinGuard guard(g_lock);
  uint32_t version = read_indirect(kRegVersion);
  if (version == 0 || version == 0xffffffffu) {
    printk("ioapic: none at %lx (version register %x)\n", kIoapicPhys, version);
    return false;
  }
  g_pins = ((version >> 16) & 0xff) + 1;
  printk_level(kLogDebug, "ioapic: %u pins at %lx, version %x\n", g_pins, kIoapicPhys,
               version & 0xff);
  return true;
}

// Pins found by ioapic_init().
unsigned ioapic_pins() {
  return g_pins;
}

// Write the high half (destination) first, then the low half, which unmasks.
bool ioapic_route(uint32_t irq, uint8_t vector, uint32_t apic_id) {
  if (irq >= g_pins)
    return false;
  mm::SpinGuard guard(g_lock);
  write_indirect(kRegRedirBase + 2 * irq, kRedirMasked);
  write_indirect(kRegRedirBase + 2 * irq + 1, apic_id << 24);
  write_indirect(kRegRedirBase + 2 * irq, vector);  // fixed, physical, high, edge, unmasked
  return true;
}

// Set the mask bit of the pin's entry.
void ioapic_mask(uint32_t irq) {
  if (irq >= g_pins)
    return;
  mm::SpinGuard guard(g_lock);
  write_indirect(kRegRedirBase + 2 * irq, kRedirMasked);
}

}  // namespace hvmm::guest
