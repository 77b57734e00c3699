// Thin inline wrappers over x86-64 instructions the kernel needs: port I/O, MSRs, control
// registers, TLB invalidation, TSC and interrupt flag handling.
#pragma once

#include <cstdint>

namespace hvmm::guest::arch {

inline constexpr uint32_t kMsrEfer = 0xc0000080;
inline constexpr uint32_t kMsrStar = 0xc0000081;
inline constexpr uint32_t kMsrLstar = 0xc0000082;
inline constexpr uint32_t kMsrFmask = 0xc0000084;
inline constexpr uint32_t kMsrFsBase = 0xc0000100;
inline constexpr uint32_t kMsrGsBase = 0xc0000101;
inline constexpr uint32_t kMsrKernelGsBase = 0xc0000102;
inline constexpr uint32_t kMsrApicBase = 0x1b;

// Write one byte to an I/O port.
inline void outb(uint16_t port, uint8_t value) {
  asm volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

// Read one byte from an I/O port.
inline uint8_t inb(uint16_t port) {
  uint8_t value;
  asm volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}

// Write a string of bytes to one I/O port with a single (emulated) instruction.
inline void outsb(uint16_t port, const char* data, uint64_t count) {
  asm volatile("rep outsb" : "+S"(data), "+c"(count) : "d"(port) : "memory");
}

// Read a model-specific register.
inline uint64_t rdmsr(uint32_t msr) {
  uint32_t lo, hi;
  asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

// Write a model-specific register.
inline void wrmsr(uint32_t msr, uint64_t value) {
  asm volatile("wrmsr"
               :
               : "c"(msr), "a"(static_cast<uint32_t>(value)),
                 "d"(static_cast<uint32_t>(value >> 32))
               : "memory");
}

// Read the time-stamp counter.
inline uint64_t rdtsc() {
  uint32_t lo, hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

// Result of one CPUID leaf.
struct CpuidResult {
  uint32_t eax, ebx, ecx, edx;
};

// Execute CPUID for a leaf and subleaf.
inline CpuidResult cpuid(uint32_t leaf, uint32_t subleaf = 0) {
  CpuidResult r;
  asm volatile("cpuid"
               : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
               : "a"(leaf), "c"(subleaf));
  return r;
}

// Read CR2, the faulting linear address of the last page fault.
inline uint64_t read_cr2() {
  uint64_t v;
  asm volatile("mov %%cr2, %0" : "=r"(v));
  return v;
}

// Read CR3, the current page-table root (and PCID).
inline uint64_t read_cr3() {
  uint64_t v;
  asm volatile("mov %%cr3, %0" : "=r"(v));
  return v;
}

// Load CR3, switching address space (flushes non-global entries unless bit 63 is set).
inline void write_cr3(uint64_t v) {
  asm volatile("mov %0, %%cr3" : : "r"(v) : "memory");
}

// Read CR0.
inline uint64_t read_cr0() {
  uint64_t v;
  asm volatile("mov %%cr0, %0" : "=r"(v));
  return v;
}

// Read CR4.
inline uint64_t read_cr4() {
  uint64_t v;
  asm volatile("mov %%cr4, %0" : "=r"(v));
  return v;
}

// Write CR4.
inline void write_cr4(uint64_t v) {
  asm volatile("mov %0, %%cr4" : : "r"(v) : "memory");
}

// Invalidate the TLB entry of one linear address in the current PCID.
inline void invlpg(uint64_t va) {
  asm volatile("invlpg (%0)" : : "r"(va) : "memory");
}

// Enable interrupts.
inline void sti() {
  asm volatile("sti" : : : "memory");
}

// Disable interrupts.
inline void cli() {
  asm volatile("cli" : : : "memory");
}

// Halt until the next interrupt.
inline void hlt() {
  asm volatile("hlt" : : : "memory");
}

// Spin-wait hint.
inline void pause() {
  asm volatile("pause" : : : "memory");
}

// Read RFLAGS.
inline uint64_t read_flags() {
  uint64_t f;
  asm volatile("pushfq; popq %0" : "=r"(f) : : "memory");
  return f;
}

// Disable interrupts and return the previous RFLAGS.
inline uint64_t irq_save() {
  uint64_t f = read_flags();
  cli();
  return f;
}

// Restore the interrupt flag from a value returned by irq_save().
inline void irq_restore(uint64_t flags) {
  if (flags & 0x200)
    sti();
}

}  // namespace hvmm::guest::arch
