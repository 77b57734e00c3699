// Selftests of the memory managers running on the real machine: memblock, buddy, slab,
// kmalloc, vmalloc, the kernel page table (W^X, large-page direct map) and demand paging.
// Each is small: ring-0 code is emulated on the target machine.
#include "hvmm/guest/memory.h"
#include "hvmm/guest/probe.h"
#include "hvmm/guest/process.h"
#include "hvmm/guest/runtime.h"
#include "hvmm/guest/selftest.h"

extern "C" char __kernel_text_start[], __kernel_rodata_start[], __kernel_data_start[];

namespace hvmm::guest {
namespace {

using hvmm::kPageSize;

// Memblock on a private instance: merging, top-down aligned allocation under a limit,
// free ranges exclude reservations; the boot memblock reserved the image and the modules.
bool test_memblock(TestResult& r) {
  static mm::Memblock mb;
  mb = mm::Memblock();
  mb.add(PhysRange{PhysAddr(0x100000), 0x100000});
  mb.add(PhysRange{PhysAddr(0x200000), 0x200000});  // adjacent: merged
  mb.add(PhysRange{PhysAddr(0x1000000), 0x100000});
  if (mb.memory().count() != 2)
    return r.fail("adjacent RAM not merged (%u ranges)", mb.memory().count());
  mb.reserve(PhysRange{PhysAddr(0x100000), 0x10000});
  PhysAddr a = mb.alloc(0x4000, 0x4000, PhysAddr(0x400000));
  if (a != PhysAddr(0x400000 - 0x4000))
    return r.fail("alloc below limit returned %lx", a.value());
  PhysAddr b = mb.alloc(0x2000000, kPageSize);
  if (b != mm::kNoPhys)
    return r.fail("oversized alloc returned %lx", b.value());
  uint64_t free_bytes = 0;
  mb.for_each_free_range([&](PhysRange free) { free_bytes += free.size; });
  uint64_t expect = 0x300000 + 0x100000 - 0x10000 - 0x4000;
  if (free_bytes != expect)
    return r.fail("free bytes %lx, expected %lx", free_bytes, expect);
  for (unsigned i = 0; i < boot_info().nr_modules; ++i)
    if (!kmem().memblock.reserved().overlaps(PhysRange{PhysAddr(boot_info().modules[i].paddr), 1}))
      return r.fail("module %u not reserved in the boot memblock", i);
  if (!kmem().memblock.reserved().overlaps(PhysRange{kernel_image_phys(__kernel_text_start), 1}))
    return r.fail("kernel image not reserved in the boot memblock");
  return true;
}

// Buddy: aligned blocks of each order, zeroed pages, counters restored after frees.
bool test_buddy(TestResult& r) {
  mm::BuddyAllocator& buddy = kmem().buddy;
  buddy.drain_this_cpu();
  uint64_t before = buddy.free_pages_total();
  PhysAddr blocks[6];
  for (unsigned order = 0; order < 6; ++order) {
    blocks[order] = buddy.alloc_phys(order == 0 ? mm::kGfpZero : mm::kGfpKernel, order);
    if (blocks[order] == mm::kNoPhys)
      return r.fail("order %u allocation failed", order);
    if (!blocks[order].is_aligned(kPageSize << order))
      return r.fail("order %u block %lx misaligned", order, blocks[order].value());
  }
  const auto* z = static_cast<const uint64_t*>(mm::arch::phys_to_virt(blocks[0]));
  for (unsigned i = 0; i < kPageSize / 8; i += 64)
    if (z[i] != 0)
      return r.fail("GFP_ZERO page not zero at qword %u", i);
  PhysAddr max_block = buddy.alloc_phys(mm::kGfpKernel, mm::kMaxOrder);
  if (max_block == mm::kNoPhys)
    return r.fail("order %u allocation failed", mm::kMaxOrder);
  buddy.free_phys(max_block, mm::kMaxOrder);
  for (unsigned order = 0; order < 6; ++order)
    buddy.free_phys(blocks[order], order);
  buddy.drain_this_cpu();
  uint64_t after = buddy.free_pages_total();
  if (after != before)
    return r.fail("free pages %lu before, %lu after", before, after);
  mm::ZoneStats s = buddy.zone_stats(mm::kZoneDma32);
  return r.note("%lu free pages, %lu splits, %lu merges", after, s.splits, s.merges);
}

// Slab: distinct objects, a debug cache catches a red-zone overwrite.
bool test_slab(TestResult& r) {
  static mm::KmemCache cache;
  if (!cache.init(&kmem().buddy, "selftest48", 48, 8, mm::kSlabDebug))
    return r.fail("cache init failed");
  void* objs[40];
  for (auto& o : objs) {
    o = cache.alloc(mm::kGfpKernel);
    if (o == nullptr)
      return r.fail("allocation failed");
    memset(o, 0x5a, 48);
  }
  for (unsigned i = 1; i < 40; ++i)
    if (objs[i] == objs[i - 1])
      return r.fail("object handed out twice");
  static_cast<char*>(objs[7])[48] = 1;  // overwrite the red zone
  for (auto* o : objs)
    cache.free(o);
  mm::KmemCacheStats st = cache.stats();
  if (st.debug_errors != 1)
    return r.fail("red-zone overwrite: %lu findings", st.debug_errors);
  // The object whose red zone was hit is reported and leaked, never reused.
  if (st.allocs != 40 || st.frees != 39)
    return r.fail("counters %lu/%lu", st.allocs, st.frees);
  return r.note("%u objects of %u B per slab", (4096u << cache.slab_order()) / cache.slot_size(),
                cache.slot_size());
}

// kmalloc: every size class from 8 to 8192 and one large allocation, usable sizes fit.
bool test_kmalloc(TestResult& r) {
  void* p[15];
  size_t size = 8;
  for (unsigned i = 0; i < 15; ++i, size <<= 1) {
    p[i] = mm::kmalloc(size, mm::kGfpKernel);
    if (p[i] == nullptr)
      return r.fail("kmalloc(%lu) failed", size);
    if (kmem().kmalloc.usable_size(p[i]) < size)
      return r.fail("usable size of %lu too small", size);
    static_cast<char*>(p[i])[size - 1] = 1;
  }
  for (auto* q : p)
    mm::kfree(q);
  return true;
}

// vmalloc: contiguous mapped pages, an unmapped guard page after them, lazy purge.
bool test_vmalloc(TestResult& r) {
  mm::Vmalloc& vm = kmem().vmalloc;
  auto* p = static_cast<char*>(vm.alloc(3 * kPageSize));
  if (p == nullptr)
    return r.fail("vmalloc of 3 pages failed");
  uint64_t va = reinterpret_cast<uint64_t>(p);
  if (va < kVmallocStart || va >= kVmallocEnd)
    return r.fail("address %lx outside vmalloc", va);
  for (unsigned i = 0; i < 3; ++i)
    p[i * kPageSize] = static_cast<char>(i + 1);
  if (probe_faults(p))
    return r.fail("first page not mapped");
  if (!probe_faults(p + 3 * kPageSize))
    return r.fail("guard page is mapped");
  if (vm.area_size(p) != 3 * kPageSize)
    return r.fail("area size %lu", vm.area_size(p));
  vm.free(p);
  uint64_t purges = vm.stats().purges;
  vm.purge();
  if (vm.stats().purges <= purges && vm.stats().lazy_pages != 0)
    return r.fail("purge did not flush the lazy areas");
  return r.note("%lu purges so far", vm.stats().purges);
}

// Kernel page table: text RX, rodata R+NX, data RW+NX, the direct map in large pages; and a
// scratch table maps, translates and unmaps a mixed range.
bool test_page_table(TestResult& r) {
  const mm::PageTable& pt = kmem().kernel_pt;
  auto check = [&](const char* sym, bool w, bool nx) {
    mm::Translation t = pt.translate(VirtAddr(reinterpret_cast<uint64_t>(sym)));
    return t.present && ((t.flags & mm::kPteWrite) != 0) == w &&
           ((t.flags & mm::kPteNx) != 0) == nx;
  };
  if (!check(__kernel_text_start, false, false))
    return r.fail("text is not RX");
  if (!check(__kernel_rodata_start, false, true))
    return r.fail("rodata is not R+NX");
  if (!check(__kernel_data_start, true, true))
    return r.fail("data is not RW+NX");
  mm::Translation dm = pt.translate(VirtAddr(kDirectMapBase));
  if (!dm.present || dm.page_size < kLargePageSize)
    return r.fail("direct map not in large pages");
  static mm::PageTable scratch;
  if (!scratch.init(&kmem().buddy))
    return r.fail("scratch PML4 allocation failed");
  constexpr uint64_t kVa = 0x40000000 - kLargePageSize;
  PhysAddr pa = kmem().buddy.alloc_phys(mm::kGfpKernel, 10);
  if (pa == mm::kNoPhys)
    return r.fail("no 4 MiB block");
  // Two 4 KiB pages below a 2 MiB boundary, then one 2 MiB page above it.
  constexpr uint64_t kOff = kLargePageSize - 2 * kPageSize;
  if (scratch.map(VirtAddr(kVa + kOff), pa + kOff, 2 * kLargePageSize - kOff, mm::kPteWrite) !=
      mm::PtStatus::kOk)
    return r.fail("scratch map failed");
  mm::Translation t = scratch.translate(VirtAddr(kVa + kLargePageSize + 0x123));
  if (!t.present || t.pa != pa + kLargePageSize + 0x123 || t.page_size != kLargePageSize)
    return r.fail("wrong translation above the boundary");
  if (scratch.translate(VirtAddr(kVa + kOff)).page_size != kPageSize)
    return r.fail("no 4 KiB page below the boundary");
  if (scratch.translate(VirtAddr(kVa + kOff - kPageSize)).present)
    return r.fail("page before the range is mapped");
  mm::MmuGather gather(&kmem().buddy);
  scratch.unmap(VirtAddr(kVa), 2 * kLargePageSize, gather);
  if (scratch.translate(VirtAddr(kVa + kLargePageSize)).present)
    return r.fail("still mapped after unmap");
  scratch.destroy(gather);
  gather.release();
  kmem().buddy.free_phys(pa, 10);
  return r.note("direct map page %lu KiB", dm.page_size >> 10);
}

// Demand paging decisions on a fresh address space: zero page inside a RW area, permission
// fault on a write to the read-only code, segv outside every area.
bool test_demand_paging(TestResult& r) {
  UserMm* m = mm_create();
  if (m == nullptr)
    return r.fail("mm_create failed");
  bool ok = false;
  mm::MmResult area = m->as.mmap(VirtAddr(0), 4 * kPageSize, mm::kVmRead | mm::kVmWrite, false);
  if (!area.ok) {
    r.fail("mmap failed: %s", area.error);
  } else if (m->as.handle_fault(VirtAddr(area.address.value() + kPageSize), mm::kFaultWrite) !=
             mm::FaultDecision::kMapZeroPage) {
    r.fail("write fault in RW area not served");
  } else if (!m->as.page_table().translate(VirtAddr(area.address.value() + kPageSize)).present) {
    r.fail("page not mapped after the fault");
  } else if (m->as.page_table().translate(VirtAddr(area.address.value())).present) {
    r.fail("neighbour page mapped without a fault");
  } else if (m->as.decide_fault(VirtAddr(kUserCodeBase), mm::kFaultWrite | mm::kFaultPresent) !=
             mm::FaultDecision::kPermissionFault) {
    r.fail("write to code not a permission fault");
  } else if (m->as.decide_fault(VirtAddr(0x1000), mm::kFaultRead) != mm::FaultDecision::kSegv) {
    r.fail("fault outside areas not segv");
  } else {
    ok = true;
  }
  mm_destroy(m);
  return ok;
}

}  // namespace

const Selftest kMmSelftests[] = {
    {"memblock", test_memblock},
    {"buddy", test_buddy},
    {"slab", test_slab},
    {"kmalloc", test_kmalloc},
    {"vmalloc", test_vmalloc},
    {"page_table", test_page_table},
    {"demand_paging", test_demand_paging},
    {nullptr, nullptr},
};

}  // namespace hvmm::guest
