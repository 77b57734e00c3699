// The only door from guest/mm to the machine.
//
// guest/mm is portable, freestanding C++ that builds twice: into the guest kernel (where
// guest/arch or guest/kernel implement these functions on real hardware) and into a host
// library (guest/mm/host implements them over a fake physical arena made with mmap).
// Nothing in guest/mm touches a CPU register, an I/O port or a page-table root directly;
// everything it needs from the machine is declared here.
//
// Contract for the kernel implementation:
// - this_cpu() is stable while interrupts are off (the mm code disables them around per-CPU
//   state with irq_save()); values are < cpu_count() <= kMaxCpus.
// - phys_to_virt()/virt_to_phys() are the direct map: every RAM byte given to memblock must
//   be reachable through phys_to_virt() before memblock hands it out.
// - flush_tlb_kernel_range() must invalidate [start, end) of the kernel half on EVERY CPU and
//   return only when all have done so (vmalloc's lazy purge relies on it).
// - mm_panic() prints the message and never returns.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hvmm/base/address.h"
#include "hvmm/base/levels.h"

namespace hvmm::guest::mm {

// The most CPUs any per-CPU array in guest/mm is sized for.
inline constexpr unsigned kMaxCpus = 64;

// Page sizes, level arithmetic and the PhysAddr/VirtAddr types are base's
// (hvmm/base/address.h, hvmm/base/levels.h): hvmm::kPageSize, hvmm::level_size, ...

namespace arch {

// Return the index of the CPU running the caller (0-based, < cpu_count()).
unsigned this_cpu();

// Return how many CPUs are online (at least 1, at most kMaxCpus).
unsigned cpu_count();

// Return the direct-map virtual address of physical address `pa`.
void* phys_to_virt(PhysAddr pa);

// Return the physical address behind direct-map address `va`.
PhysAddr virt_to_phys(const void* va);

// Invalidate kernel-half translations of [start, end) on all CPUs and wait for them.
void flush_tlb_kernel_range(VirtAddr start, VirtAddr end);

// Disable interrupts on this CPU and return the previous state (opaque, for irq_restore).
uint64_t irq_save();

// Restore the interrupt state saved by irq_save().
void irq_restore(uint64_t flags);

// Hint the CPU that it is spinning (pause).
void cpu_relax();

// Print `message` and stop the machine (kernel) or the process (host). Never returns.
[[noreturn]] void mm_panic(const char* message);

}  // namespace arch
}  // namespace hvmm::guest::mm
