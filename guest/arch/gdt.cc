// The kernel GDT: null, kernel code/data, user data/code (the order `syscall`/`sysret`
// expect), then one 16-byte TSS descriptor per CPU.
#include "hvmm/guest/arch/gdt.h"

#include "hvmm/guest/arch/trap.h"

namespace hvmm::guest::arch {
namespace {

constexpr unsigned kFixedEntries = 5;
uint64_t g_gdt[kFixedEntries + 2 * kMaxCpus] = {
    0,
    0x00af9a000000ffff,  // 0x08 kernel code, 64-bit
    0x00cf92000000ffff,  // 0x10 kernel data
    0x00cff2000000ffff,  // 0x18 user data (DPL 3)
    0x00affa000000ffff,  // 0x20 user code, 64-bit (DPL 3)
};
Tss g_tss[kMaxCpus];

struct __attribute__((packed)) Gdtr {
  uint16_t limit;
  uint64_t base;
};

// Write the 16-byte available-TSS descriptor of `cpu` into the GDT.
void write_tss_descriptor(unsigned cpu) {
  uint64_t base = reinterpret_cast<uint64_t>(&g_tss[cpu]);
  uint64_t limit = sizeof(Tss) - 1;
  uint64_t low = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
                 (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
  g_gdt[kFixedEntries + 2 * cpu] = low;
  g_gdt[kFixedEntries + 2 * cpu + 1] = base >> 32;
}

}  // namespace

// Load the GDT, reload CS (far return) and the data segments, then load the TSS.
void gdt_load(unsigned cpu, uint64_t ist_stack_top) {
  g_tss[cpu].ist[0] = ist_stack_top;
  g_tss[cpu].iomap_base = sizeof(Tss);
  write_tss_descriptor(cpu);
  Gdtr gdtr{sizeof(g_gdt) - 1, reinterpret_cast<uint64_t>(g_gdt)};
  asm volatile(
      "lgdt %0\n"
      "pushq %1\n"
      "leaq 1f(%%rip), %%rax\n"
      "pushq %%rax\n"
      "lretq\n"
      "1:\n"
      "movl %2, %%eax\n"
      "movl %%eax, %%ds\n"
      "movl %%eax, %%es\n"
      "movl %%eax, %%ss\n"
      "xorl %%eax, %%eax\n"
      "movl %%eax, %%fs\n"
      "movl %%eax, %%gs\n"
      :
      : "m"(gdtr), "i"(static_cast<uint64_t>(kKernelCs)), "i"(static_cast<uint32_t>(kKernelDs))
      : "rax", "memory");
  uint16_t tr = static_cast<uint16_t>(kTssBase + 16 * cpu);
  asm volatile("ltr %0" : : "r"(tr));
}

// Point TSS.RSP0 and IST2 (the system-call #BP gate) of `cpu` at the ring-3 trap stack.
void tss_set_kernel_stack(unsigned cpu, uint64_t rsp0) {
  g_tss[cpu].rsp[0] = rsp0;
  g_tss[cpu].ist[1] = rsp0;
}

}  // namespace hvmm::guest::arch
