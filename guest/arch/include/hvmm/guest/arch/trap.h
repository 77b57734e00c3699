// The trap frame built by every interrupt, exception and system-call entry, and the vectors
// the kernel uses.
#pragma once

#include <cstdint>

namespace hvmm::guest {

// Registers saved on the kernel stack on entry (lowest address first). The layout is shared
// with arch/entry.S.
struct TrapFrame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector, error_code;
  uint64_t rip, cs, rflags, rsp, ss;
};
static_assert(sizeof(TrapFrame) == 22 * 8);

}  // namespace hvmm::guest

namespace hvmm::guest::arch {

inline constexpr uint16_t kKernelCs = 0x08;
inline constexpr uint16_t kKernelDs = 0x10;
inline constexpr uint16_t kUserDs = 0x18 | 3;
inline constexpr uint16_t kUserCs = 0x20 | 3;
inline constexpr uint16_t kTssBase = 0x28;

inline constexpr uint8_t kVectorPageFault = 14;
inline constexpr uint8_t kVectorTimer = 0x20;
// Device interrupts routed through the IOAPIC: kVectorDeviceBase + n, n < kDeviceVectors.
inline constexpr uint8_t kVectorDeviceBase = 0x30;
inline constexpr unsigned kDeviceVectors = 16;
inline constexpr uint8_t kVectorTlbShootdown = 0xf0;
inline constexpr uint8_t kVectorCallFunction = 0xf1;
inline constexpr uint8_t kVectorSpurious = 0xff;

// Handler of one interrupt vector (called with interrupts disabled).
using InterruptHandler = void (*)(TrapFrame& frame);

// Install a handler for a vector >= 32.
void set_interrupt_handler(uint8_t vector, InterruptHandler handler);

// Build the IDT (exceptions, timer, device interrupts, IPIs, spurious) once, on the boot CPU.
void idt_init();

// Load the IDT on the calling CPU.
void idt_load();

// True if the frame was taken while running ring-3 code.
inline bool from_user(const TrapFrame& frame) {
  return (frame.cs & 3) == 3;
}

}  // namespace hvmm::guest::arch
