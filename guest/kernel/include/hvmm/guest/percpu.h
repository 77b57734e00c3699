// Per-CPU data, reached through the GS base (which the kernel sets once per CPU and user
// code never changes).
#pragma once

#include <cstdint>

#include "hvmm/guest/arch/gdt.h"

namespace hvmm::guest {

struct Process;
struct UserMm;

// One CPU's private state. The first four fields are used by arch/entry.S at fixed offsets.
struct PerCpu {
  PerCpu* self;         // 0: this block (read through %gs:0)
  uint64_t kernel_rsp;  // 8: stack for `syscall` entry
  uint64_t user_rsp;    // 16: scratch for the user RSP during `syscall`
  uint64_t return_rsp;  // 24: where user_return() unwinds to
  unsigned cpu;         // index 0..cpu_count()-1
  uint32_t apic_id;
  volatile uint32_t online;
  uint64_t timer_ticks;
  Process* current;            // the user process running here, or null
  uint64_t loaded_cr3;         // the root (with PCID) currently in CR3
  volatile uint32_t lazy_tlb;  // 1 while only kernel mappings are in use here
  uint64_t stack_top;
  uint64_t ist_top;
  uint64_t stack_bottom;  // lowest byte of the kernel stack (APs: vmalloc'ed, guard below)
  UserMm* loaded_mm;            // the user address space whose tables are in CR3, or null
  uint16_t loaded_asid;         // ASID the allocator gave loaded_mm here (its PCID when in use)
  uint64_t tlb_remote_flushes;  // user-range invalidations this CPU did for shootdown requests
};

inline constexpr unsigned kMaxCpus = arch::kMaxCpus;

// Return the calling CPU's block.
inline PerCpu& this_cpu() {
  PerCpu* p;
  asm volatile("movq %%gs:0, %0" : "=r"(p));
  return *p;
}

// Return the block of CPU `cpu`.
PerCpu& cpu_data(unsigned cpu);

// Number of CPUs online.
unsigned online_cpus();

// Mark `cpu` online (called by the CPU itself once it can take IPIs).
void set_cpu_online(unsigned cpu);

// Point GS at `cpu`'s block on the calling CPU.
void percpu_install(unsigned cpu);

}  // namespace hvmm::guest
