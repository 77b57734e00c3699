// The kernel side of guest/mm's arch hooks: CPU ids from the per-CPU block, the direct
// map, TLB shootdown of kernel ranges, interrupt masking and panics.
#include "hvmm/guest/mm/arch_hooks.h"

#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/panic.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/smp.h"
#include "hvmm/guest/tlb.h"

namespace hvmm::guest::mm::arch {

// The calling CPU's index.
unsigned this_cpu() {
  return hvmm::guest::this_cpu().cpu;
}

// CPUs that may run guest/mm code (counted before APs start).
unsigned cpu_count() {
  return hvmm::guest::possible_cpus();
}

// The direct-map alias of a physical address.
void* phys_to_virt(PhysAddr pa) {
  return reinterpret_cast<void*>(pa.value() + kDirectMapBase);
}

// The physical address behind a direct-map or kernel-image address.
PhysAddr virt_to_phys(const void* va) {
  uint64_t v = reinterpret_cast<uint64_t>(va);
  return PhysAddr(v >= kKernelVma ? v - kKernelVma : v - kDirectMapBase);
}

// Flush kernel translations of [start, end) on every CPU and wait.
void flush_tlb_kernel_range(VirtAddr start, VirtAddr end) {
  hvmm::guest::tlb_flush_kernel_range(start.value(), end.value());
}

// Interrupt masking for guest/mm's irq-saving locks.
uint64_t irq_save() {
  return hvmm::guest::arch::irq_save();
}
void irq_restore(uint64_t flags) {
  hvmm::guest::arch::irq_restore(flags);
}

// Spin hint; also answers TLB shootdowns, because guest/mm spins with interrupts off (its
// locks are irq-saving) and a shootdown issued under one of its locks (vmalloc's purge)
// would otherwise wait forever for a CPU spinning on that lock.
void cpu_relax() {
  hvmm::guest::tlb_service_pending();
  hvmm::guest::arch::pause();
}

// Panic with guest/mm's message.
void mm_panic(const char* message) {
  hvmm::guest::panic("mm: %s", message);
}

}  // namespace hvmm::guest::mm::arch
