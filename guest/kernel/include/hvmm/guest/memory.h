// The kernel's memory layout and its global memory managers (memblock, buddy, kmalloc,
// vmalloc, the kernel page table), set up by memory_init().
#pragma once

#include <cstdint>

#include "hvmm/guest/boot_info.h"
#include "hvmm/guest/mm/buddy.h"
#include "hvmm/guest/mm/memblock.h"
#include "hvmm/guest/mm/page_table.h"
#include "hvmm/guest/mm/slab.h"
#include "hvmm/guest/mm/vmalloc.h"

namespace hvmm::guest {

// Virtual layout of the kernel half.
inline constexpr uint64_t kDirectMapBase = 0xffff888000000000ull;  // PML4 slot 273
inline constexpr uint64_t kVmallocStart = 0xffffc90000000000ull;   // PML4 slot 402
inline constexpr uint64_t kVmallocEnd = kVmallocStart + (uint64_t{32} << 30);
inline constexpr uint64_t kKernelVma = 0xffffffff80000000ull;  // PML4 511, PDPT 510
inline constexpr uint64_t kApicVa = 0xffffffffff000000ull;     // PML4 511, PDPT 511: xAPIC page
// Device windows mapped by ioremap(), right above the xAPIC page (same shared PML4 slot).
inline constexpr uint64_t kIoremapStart = kApicVa + 0x1000;
inline constexpr uint64_t kIoremapEnd = kApicVa + (uint64_t{8} << 20);

// The global memory managers.
struct KernelMemory {
  mm::Memblock memblock;
  mm::BuddyAllocator buddy;
  mm::Kmalloc kmalloc;
  mm::PageTable kernel_pt;
  mm::Vmalloc vmalloc;
  uint64_t ram_end = 0;    // one past the highest RAM byte
  uint64_t ram_total = 0;  // bytes of RAM reported by the loader
  bool gbpages = false;    // CPU supports 1 GiB pages
};

// The kernel's memory managers (valid after memory_init()).
KernelMemory& kmem();

// Build memblock from the PVH memory map, the early direct map, the buddy allocator, the
// kmalloc caches, the final kernel page tables (direct map with large pages, W^X image,
// vmalloc slot), switch to them, and start vmalloc.
void memory_init(const BootInfo& info);

// The physical address of a kernel-image symbol.
inline PhysAddr kernel_image_phys(const void* va) {
  return PhysAddr(reinterpret_cast<uint64_t>(va) - kKernelVma);
}

// Map the device registers [pa, pa + size) uncached (PCD|PWT, NX) into the kernel half, shared
// by every address space, and return the virtual address of `pa`; nullptr when the window is
// exhausted or the page table cannot grow. Mappings are never removed (devices live as long
// as the kernel).
volatile void* ioremap(PhysAddr pa, uint64_t size);

// Reserve `size` bytes (rounded up to pages) of the ioremap window without mapping anything,
// for a caller that maps and remaps them itself (io_window.h); 0 when the window is exhausted.
uint64_t ioremap_reserve(uint64_t size);

// Print a one-line summary of zones and free memory.
void memory_print_summary();

}  // namespace hvmm::guest
