// The IDT: exception vectors 0-31, the timer, the device vectors (IOAPIC), the IPI vectors
// and the spurious vector, all pointing at the 16-byte stubs of entry.S. Only the vectors in use
// are filled, because every instruction of ring-0 code is emulated on the target machine.
#include "hvmm/guest/arch/trap.h"

extern "C" char isr_stubs[];

namespace hvmm::guest::arch {
namespace {

// One 64-bit interrupt gate (Intel SDM vol. 3, 6.14.1).
struct __attribute__((packed)) Gate {
  uint16_t offset_low;
  uint16_t selector;
  uint8_t ist;
  uint8_t type_attr;
  uint16_t offset_mid;
  uint32_t offset_high;
  uint32_t reserved;
};
static_assert(sizeof(Gate) == 16);

struct __attribute__((packed)) Idtr {
  uint16_t limit;
  uint64_t base;
};

Gate g_idt[256];
InterruptHandler g_handlers[256];

// Fill the gate of `vector` with its stub, a DPL and an IST index.
void set_gate(unsigned vector, unsigned dpl, unsigned ist) {
  uint64_t stub = reinterpret_cast<uint64_t>(isr_stubs) + 16 * vector;
  Gate& g = g_idt[vector];
  g.offset_low = static_cast<uint16_t>(stub);
  g.selector = kKernelCs;
  g.ist = static_cast<uint8_t>(ist);
  g.type_attr = static_cast<uint8_t>(0x8e | (dpl << 5));
  g.offset_mid = static_cast<uint16_t>(stub >> 16);
  g.offset_high = static_cast<uint32_t>(stub >> 32);
}

}  // namespace

// Fill the gates the kernel uses. #DF (8) and NMI (2) run on IST1.
void idt_init() {
  for (unsigned v = 0; v < 32; ++v)
    set_gate(v, 0, (v == 2 || v == 8) ? 1 : 0);
  set_gate(3, 3, 2);  // int3: callable from ring 3, on IST2 (it carries system calls, entry.S)
  set_gate(kVectorTimer, 0, 0);
  for (unsigned v = kVectorDeviceBase; v < kVectorDeviceBase + kDeviceVectors; ++v)
    set_gate(v, 0, 0);
  for (unsigned v = kVectorTlbShootdown; v < 256; ++v)
    set_gate(v, 0, 0);
}

// Load the IDT register on this CPU.
void idt_load() {
  Idtr idtr{sizeof(g_idt) - 1, reinterpret_cast<uint64_t>(g_idt)};
  asm volatile("lidt %0" : : "m"(idtr));
}

// Register a handler for an interrupt vector.
void set_interrupt_handler(uint8_t vector, InterruptHandler handler) {
  g_handlers[vector] = handler;
}

// The registered handler of a vector, or null.
InterruptHandler interrupt_handler(uint8_t vector) {
  return g_handlers[vector];
}

}  // namespace hvmm::guest::arch
