// The I/O window: one reserved page of the ioremap area, remapped for every access.
#include "hvmm/guest/io_window.h"

#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/memory.h"

namespace hvmm::guest {
namespace {

// Uncached like ioremap() (PCD|PWT), never executable, and not global: INVLPG on this CPU is
// the only flush a remap needs.
constexpr uint64_t kWindowAttrs = mm::kPteWrite | mm::kPteNx | mm::kPtePcd | mm::kPtePwt;

mm::SpinLock g_window_lock;
uint64_t g_window_va = 0;  // reserved on first use
bool g_window_mapped = false;

// Point the window at `page` (page aligned): drop the previous page first, then flush it on
// this CPU, then map. False when the window or its page table cannot be had.
bool point_window_at(PhysAddr page) {
  if (g_window_va == 0 && (g_window_va = ioremap_reserve(kPageSize)) == 0)
    return false;
  mm::PageTable& pt = kmem().kernel_pt;
  if (g_window_mapped) {
    mm::MmuGather gather(&kmem().buddy);
    pt.unmap(VirtAddr(g_window_va), kPageSize, gather);
    arch::invlpg(g_window_va);
    g_window_mapped = false;
  }
  if (pt.map(VirtAddr(g_window_va), page, kPageSize, kWindowAttrs, kPageSize) != mm::PtStatus::kOk)
    return false;
  g_window_mapped = true;
  return true;
}

}  // namespace

unsigned physical_address_bits() {
  if (arch::cpuid(0x80000000).eax < 0x80000008)
    return 36;
  return arch::cpuid(0x80000008).eax & 0xff;
}

// One 32-bit load or store through a volatile pointer: exactly one access of 4 bytes, which
// KVM can emulate when the address is MMIO.
bool io_window_access(PhysAddr pa, bool write, uint32_t* value) {
  mm::SpinGuard guard(g_window_lock);
  if (!point_window_at(pa.align_down(kPageSize)))
    return false;
  auto* word = reinterpret_cast<volatile uint32_t*>(g_window_va + (pa.value() & (kPageSize - 1)));
  if (write)
    *word = *value;
  else
    *value = *word;
  return true;
}

}  // namespace hvmm::guest
