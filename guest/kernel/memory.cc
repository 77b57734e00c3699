// Memory bring-up: memblock from the PVH memory map → early direct map → buddy → kmalloc →
// the final kernel page table (direct map with 1 GiB/2 MiB pages, W^X kernel image, vmalloc
// slot) → vmalloc. Every step costs few instructions: the direct map of the early tables is
// a few large-page entries and the Page array is zeroed by one rep stosb inside guest/mm.
#include "hvmm/guest/memory.h"

#include "hvmm/guest/arch/apic.h"
#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/cmdline.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/panic.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/time.h"

extern "C" uint64_t boot_pml4[512];
extern "C" char __kernel_text_start[], __kernel_text_end[];
extern "C" char __kernel_rodata_start[], __kernel_rodata_end[];
extern "C" char __kernel_data_start[], __kernel_end[];

namespace hvmm::guest {
namespace {

constexpr uint64_t kLowReserved = 0x100000;  // BIOS area, trampoline page, loader data
constexpr unsigned kDirectMapSlot = 273;

KernelMemory g_kmem;
mm::SpinLock g_ioremap_lock;
uint64_t g_ioremap_next = kIoremapStart;
alignas(4096) uint64_t g_early_pdpt[512];
alignas(4096) uint64_t g_early_pd[4][512];

// True if the CPU maps 1 GiB pages (CPUID 0x80000001 EDX bit 26).
bool cpu_has_gbpages() {
  if (arch::cpuid(0x80000000).eax < 0x80000001)
    return false;
  return (arch::cpuid(0x80000001).edx & (1u << 26)) != 0;
}

// Map [0, ram_end) at kDirectMapBase in the boot tables so memblock and the buddy
// allocator can reach every frame before the final tables exist.
void early_direct_map(KernelMemory& km) {
  constexpr uint64_t kLeaf = 0x83;  // present, writable, large page
  uint64_t gib = align_up(km.ram_end, kHugePageSize) >> 30;
  for (uint64_t i = 0; i < gib; ++i) {
    if (km.gbpages) {
      g_early_pdpt[i] = (i << 30) | kLeaf;
      continue;
    }
    // One page directory of 2 MiB leaves per GiB: static for the first 4 GiB, then from
    // memblock below 1 GiB (written through the boot identity map).
    PhysAddr pd_pa = i < 4 ? kernel_image_phys(g_early_pd[i])
                           : km.memblock.alloc(kPageSize, kPageSize, PhysAddr(kHugePageSize));
    if (pd_pa == mm::kNoPhys)
      panic("early direct map: no page for the directory of GiB %lu", i);
    auto* pd = i < 4 ? g_early_pd[i] : reinterpret_cast<uint64_t*>(pd_pa.value());
    for (uint64_t j = 0; j < 512; ++j)
      pd[j] = (i << 30) + (j << 21) + kLeaf;
    g_early_pdpt[i] = pd_pa.value() | 3;
  }
  boot_pml4[kDirectMapSlot] = kernel_image_phys(g_early_pdpt).value() | 3;
}

// Fill memblock: RAM from the memory map, minus low memory, the kernel image and modules.
void fill_memblock(const BootInfo& info, KernelMemory& km) {
  constexpr uint64_t limit = uint64_t{512} << 30;  // one PML4 slot of direct map
  for (unsigned i = 0; i < info.memmap_entries; ++i) {
    const HvmMemmapEntry& e = info.memmap[i];
    if (e.type != kMemmapRam || e.size == 0 || e.addr >= limit)
      continue;
    uint64_t end = e.addr + e.size < limit ? e.addr + e.size : limit;
    if (!km.memblock.add(PhysRange{PhysAddr(e.addr), end - e.addr}))
      panic("memblock: too many RAM ranges");
    km.ram_total += end - e.addr;
    if (end > km.ram_end)
      km.ram_end = end;
  }
  if (km.ram_total == 0)
    panic("no RAM in the PVH memory map");
  km.memblock.reserve(PhysRange{PhysAddr(0), kLowReserved});
  PhysAddr image_end = kernel_image_phys(__kernel_end);
  km.memblock.reserve(PhysRange{PhysAddr(kLowReserved), image_end.value() - kLowReserved});
  for (unsigned i = 0; i < info.reserved_count; ++i)
    km.memblock.reserve(PhysRange{PhysAddr(info.reserved_base[i]), info.reserved_size[i]});
  for (unsigned i = 0; i < info.nr_modules; ++i)
    km.memblock.reserve(PhysRange{PhysAddr(info.modules[i].paddr).align_down(kPageSize),
                                  info.modules[i].size + kPageSize});
}

// Map one kernel-image section [start, end) with `attrs`, panicking on failure.
void map_image_section(const char* start, const char* end, uint64_t attrs, const char* what) {
  uint64_t va = reinterpret_cast<uint64_t>(start);
  uint64_t len = (reinterpret_cast<uint64_t>(end) - va + kPageSize - 1) & ~(kPageSize - 1);
  mm::PtStatus st =
      g_kmem.kernel_pt.map(VirtAddr(va), kernel_image_phys(start), len, attrs, kPageSize);
  if (st != mm::PtStatus::kOk)
    panic("kernel page table: cannot map %s at %lx", what, va);
}

// Without x2APIC, map the xAPIC register page uncached at kApicVa (in the kernel image's PML4
// slot, so user address spaces share it) for the APIC driver.
void map_xapic_page(KernelMemory& km) {
  if (arch::x2apic_supported() || (arch::cpuid(1).edx & (1u << 9)) == 0)
    return;
  uint64_t attrs = mm::kPteWrite | mm::kPteNx | mm::kPtePcd | mm::kPtePwt | mm::kPteGlobal;
  if (km.kernel_pt.map(VirtAddr(kApicVa), PhysAddr(arch::kXapicPhys), kPageSize, attrs,
                       kPageSize) != mm::PtStatus::kOk)
    panic("kernel page table: cannot map the xAPIC page");
  arch::apic_set_mmio(reinterpret_cast<void*>(kApicVa));
}

// Build the final kernel page table and switch to it, with global pages enabled.
void build_kernel_page_table(KernelMemory& km) {
  if (!km.kernel_pt.init(&km.buddy))
    panic("kernel page table: no memory for the PML4");
  uint64_t dm_len = align_up(km.ram_end, kLargePageSize);
  uint64_t dm_attrs = mm::kPteWrite | mm::kPteNx | mm::kPteGlobal;
  if (km.kernel_pt.map(VirtAddr(kDirectMapBase), PhysAddr(0), dm_len, dm_attrs,
                       km.gbpages ? kHugePageSize : kLargePageSize) != mm::PtStatus::kOk)
    panic("kernel page table: cannot build the direct map");
  map_image_section(__kernel_text_start, __kernel_text_end, mm::kPteGlobal, "text (RX)");
  map_image_section(__kernel_rodata_start, __kernel_rodata_end, mm::kPteNx | mm::kPteGlobal,
                    "rodata (R)");
  map_image_section(__kernel_data_start, __kernel_end, mm::kPteWrite | mm::kPteNx | mm::kPteGlobal,
                    "data (RW NX)");
  map_xapic_page(km);
  if (!km.vmalloc.init(&km.buddy, &km.kernel_pt,
                       VirtRange{VirtAddr(kVmallocStart), kVmallocEnd - kVmallocStart}))
    panic("vmalloc: init failed");
  if (!cmdline_has("nopge"))
    arch::write_cr4(arch::read_cr4() | (1u << 7));  // CR4.PGE
  arch::write_cr3(km.kernel_pt.root().value());
  this_cpu().loaded_cr3 = km.kernel_pt.root().value();
}

}  // namespace

// The global memory managers.
KernelMemory& kmem() {
  return g_kmem;
}

// See memory.h.
void memory_init(const BootInfo& info) {
  KernelMemory& km = g_kmem;
  km.gbpages = cpu_has_gbpages();
  fill_memblock(info, km);
  early_direct_map(km);
  uint64_t t0 = arch::rdtsc();
  // Fresh VM memory is zero: everything the loader or this kernel wrote so far is reserved
  // (low memory, the image, boot data, modules), so guest/mm may skip zeroing the Page array
  // and never-used frames. `nozeroram` turns this off for loaders that leave garbage.
  if (!km.buddy.init(km.memblock, !cmdline_has("nozeroram")))
    panic("buddy: cannot allocate the Page array");
  uint64_t t1 = arch::rdtsc();
  if (!km.kmalloc.init(&km.buddy, cmdline_has("slub_debug")))
    panic("kmalloc: init failed");
  mm::kmalloc_set_default(&km.kmalloc);
  uint64_t t2 = arch::rdtsc();
  build_kernel_page_table(km);
  uint64_t t3 = arch::rdtsc();
  printk_level(kLogDebug, "memory: buddy %lu us, kmalloc %lu us, page tables %lu us\n",
               tsc_to_us(t1 - t0), tsc_to_us(t2 - t1), tsc_to_us(t3 - t2));
}

// See memory.h. A bump allocator over [kIoremapStart, kIoremapEnd): few windows, never freed.
volatile void* ioremap(PhysAddr pa, uint64_t size) {
  PhysAddr first = pa.align_down(kPageSize);
  uint64_t len = align_up(pa.value() + size, kPageSize) - first.value();
  uint64_t attrs = mm::kPteWrite | mm::kPteNx | mm::kPtePcd | mm::kPtePwt | mm::kPteGlobal;
  mm::SpinGuard guard(g_ioremap_lock);
  if (len == 0 || len > kIoremapEnd - g_ioremap_next)
    return nullptr;
  uint64_t va = g_ioremap_next;
  if (g_kmem.kernel_pt.map(VirtAddr(va), first, len, attrs, kPageSize) != mm::PtStatus::kOk)
    return nullptr;
  g_ioremap_next += len;
  return reinterpret_cast<volatile void*>(va + (pa.value() - first.value()));
}

// See memory.h. The same bump allocator as ioremap().
uint64_t ioremap_reserve(uint64_t size) {
  uint64_t len = align_up(size, kPageSize);
  mm::SpinGuard guard(g_ioremap_lock);
  if (len == 0 || len > kIoremapEnd - g_ioremap_next)
    return 0;
  uint64_t va = g_ioremap_next;
  g_ioremap_next += len;
  return va;
}

// One line per zone: managed and free pages and watermarks.
void memory_print_summary() {
  static const char* const kZoneNames[] = {"DMA32", "Normal"};
  KernelMemory& km = g_kmem;
  printk("memory: %lu MiB RAM, direct map with %s pages, kernel image %lu KiB (W^X)\n",
         km.ram_total >> 20, km.gbpages ? "1 GiB" : "2 MiB",
         (kernel_image_phys(__kernel_end).value() - 0x100000) >> 10);
  for (unsigned z = 0; z < mm::kNrZones; ++z) {
    mm::ZoneStats s = km.buddy.zone_stats(static_cast<mm::ZoneId>(z));
    if (s.managed_pages == 0)
      continue;
    printk("  zone %-6s managed %lu free %lu pages, watermarks min %lu low %lu high %lu\n",
           kZoneNames[z], s.managed_pages, s.free_pages, s.watermark_min, s.watermark_low,
           s.watermark_high);
  }
}

}  // namespace hvmm::guest
