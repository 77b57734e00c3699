// The kernel GDT and the per-CPU TSS (kernel stack for ring-3 traps, IST stack for #DF/NMI).
#pragma once

#include <cstdint>

namespace hvmm::guest::arch {

inline constexpr unsigned kMaxCpus = 16;

// The 64-bit TSS (Intel SDM vol. 3, 8.7).
struct __attribute__((packed)) Tss {
  uint32_t reserved0;
  uint64_t rsp[3];
  uint64_t reserved1;
  uint64_t ist[7];
  uint64_t reserved2;
  uint16_t reserved3;
  uint16_t iomap_base;
};
static_assert(sizeof(Tss) == 104);

// Load the kernel GDT, reload segment registers and load this CPU's TSS. `ist_stack_top`
// becomes IST1 (used by #DF and NMI).
void gdt_load(unsigned cpu, uint64_t ist_stack_top);

// Set the stack the CPU switches to when a ring-3 trap arrives on `cpu` (RSP0, and IST2
// for the #BP gate that carries system calls).
void tss_set_kernel_stack(unsigned cpu, uint64_t rsp0);

}  // namespace hvmm::guest::arch
