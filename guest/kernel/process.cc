// User address spaces and ring-3 runs. The user programs live in the kernel image's
// .user.text section; its frames are mapped read-only and executable, without kPteOwned,
// at kUserCodeBase in every address space. Switching address spaces tags CR3 with the
// ASID (PCID) chosen by the generation allocator, so a switch does not flush.
#include "hvmm/guest/process.h"

#include <new>

#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/arch/gdt.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/panic.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/tlb.h"

extern "C" char __user_text_start[], __user_text_end[], syscall_entry_page[];
extern "C" uint64_t user_enter(uint64_t rip, uint64_t rsp, uint64_t a0, uint64_t a1, uint64_t a2);

namespace hvmm::guest {
namespace {

constexpr uint64_t kCr3NoFlush = 1ull << 63;

mm::AsidAllocator g_asids;
mm::KmemCache g_vma_cache;
mm::KmemCache g_mm_cache;

// Map the user code frames into `mm` (read + execute, user, not owned).
bool map_user_code(UserMm& m) {
  uint64_t len =
      reinterpret_cast<uint64_t>(__user_text_end) - reinterpret_cast<uint64_t>(__user_text_start);
  len = (len + kPageSize - 1) & ~(kPageSize - 1);
  mm::MmResult r = m.as.mmap(VirtAddr(kUserCodeBase), len, mm::kVmRead | mm::kVmExec, true);
  if (!r.ok)
    return false;
  return m.as.page_table().map(VirtAddr(kUserCodeBase), kernel_image_phys(__user_text_start), len,
                               mm::kPteUser, kPageSize) == mm::PtStatus::kOk;
}

// Map the page holding syscall_entry (one int3, see entry.S) at its physical address,
// user-accessible and executable: LSTAR points at this alias.
bool map_syscall_alias(UserMm& m) {
  const PhysAddr pa = kernel_image_phys(syscall_entry_page);
  return m.as.page_table().map(VirtAddr(pa.value()), pa, kPageSize, mm::kPteUser, kPageSize) ==
         mm::PtStatus::kOk;
}

}  // namespace

// The allocator uses 12-bit PCIDs when the CPU has them (ASID 0 is the kernel's).
void process_init() {
  if (!g_asids.init(mm::AsidAllocator::kMaxBits))
    panic("asid allocator: init failed");
  if (!g_vma_cache.init(&kmem().buddy, "vma", sizeof(mm::Vma), 8, 0) ||
      !g_mm_cache.init(&kmem().buddy, "user_mm", sizeof(UserMm), 64, 0))
    panic("process: cannot create caches");
}

// The kernel-wide ASID (PCID) allocator.
mm::AsidAllocator& asid_allocator() {
  return g_asids;
}

// Slabs of both caches, in pages.
uint64_t process_slab_pages() {
  return (g_vma_cache.stats().slabs << g_vma_cache.slab_order()) +
         (g_mm_cache.stats().slabs << g_mm_cache.slab_order());
}

// Build an address space: tables sharing the kernel half, the code, a stack area.
UserMm* mm_create() {
  void* mem = g_mm_cache.alloc(mm::kGfpZero);
  if (mem == nullptr)
    return nullptr;
  UserMm* m = new (mem) UserMm();
  bool ok = m->as.init(&kmem().buddy, &g_vma_cache, kmem().kernel_pt, VirtAddr(kUserBrkBase)) &&
            map_user_code(*m) && map_syscall_alias(*m) &&
            m->as
                .mmap(VirtAddr(kUserStackTop - kUserStackSize), kUserStackSize,
                      mm::kVmRead | mm::kVmWrite, true)
                .ok;
  if (!ok) {
    mm_destroy(m);
    return nullptr;
  }
  return m;
}

// Make every CPU drop `m` (lazy CPUs too: its tables are about to be freed), then free it.
void mm_destroy(UserMm* m) {
  if (this_cpu().loaded_mm == m)
    leave_mm();
  tlb_flush_mm_range(*m, 0, mm::kUserEnd.value(), true);
  {
    mm::MmuGather gather(&kmem().buddy);
    m->as.destroy(gather);
  }
  m->~UserMm();
  g_mm_cache.free(m);
}

// Load `m` with its ASID; flush it if the ASID is new or a shootdown skipped this CPU.
void switch_mm(UserMm& m) {
  PerCpu& me = this_cpu();
  uint64_t flags = arch::irq_save();
  __atomic_fetch_or(&m.cpu_mask, uint64_t{1} << me.cpu, __ATOMIC_SEQ_CST);
  // Publish "running m here" before reading the generation (a full barrier: an initiator
  // bumps the generation before it looks at loaded_mm, so either it sends us the IPI or we
  // see its generation and flush below).
  me.lazy_tlb = 0;
  __atomic_store_n(&me.loaded_mm, &m, __ATOMIC_SEQ_CST);
  uint64_t gen = __atomic_load_n(&m.tlb_gen, __ATOMIC_SEQ_CST);
  bool stale = m.flushed_gen[me.cpu] != gen;
  uint64_t cr3 = m.as.page_table().root().value();
  // ASIDs are allocated even without PCIDs (the bookkeeping is the same; only CR3 differs).
  mm::AsidSwitch sw = g_asids.switch_to(m.as.asid_context(), me.cpu);
  me.loaded_asid = sw.asid;
  if (pcid_enabled()) {
    cr3 |= sw.asid;
    // After a generation rollover ASIDs are reused: drop every PCID's entries once.
    if (sw.need_flush)
      tlb_flush_all_local();
    if (!stale)
      cr3 |= kCr3NoFlush;
  }
  m.flushed_gen[me.cpu] = gen;
  me.loaded_cr3 = cr3 & ~kCr3NoFlush;
  arch::write_cr3(cr3);
  arch::irq_restore(flags);
}

// Back to the kernel page table (PCID 0).
void leave_mm() {
  PerCpu& me = this_cpu();
  uint64_t flags = arch::irq_save();
  me.loaded_mm = nullptr;
  me.lazy_tlb = 1;
  me.loaded_cr3 = kmem().kernel_pt.root().value();
  arch::write_cr3(me.loaded_cr3 | (pcid_enabled() ? kCr3NoFlush : 0));
  arch::irq_restore(flags);
}

// Translate a .user.text symbol to its user address.
uint64_t user_program_address(const void* symbol) {
  return kUserCodeBase +
         (reinterpret_cast<uint64_t>(symbol) - reinterpret_cast<uint64_t>(__user_text_start));
}

}  // namespace hvmm::guest
