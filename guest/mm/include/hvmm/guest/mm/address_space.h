// AddressSpace: one user process's memory (its VMAs, its page tables, its ASID context).
//
// mmap/munmap/brk keep the VMA tree; nothing is mapped until touched. The page-fault
// handler asks decide_fault() what a fault means (demand zero page, permission fault, or
// no area at all) and handle_fault() carries out the demand-zero case. Frames mapped on
// demand carry kPteOwned and return to the buddy allocator when unmapped.
// Not locked: the kernel serialises calls on one address space (its mm lock).
#pragma once

#include <cstdint>

#include "hvmm/guest/mm/asid.h"
#include "hvmm/guest/mm/buddy.h"
#include "hvmm/guest/mm/page_table.h"
#include "hvmm/guest/mm/slab.h"
#include "hvmm/guest/mm/vma.h"

namespace hvmm::guest::mm {

// The lower-half layout of a user address space.
inline constexpr VirtAddr kUserStart{0x0000000000400000ull};    // nothing mapped below 4 MiB
inline constexpr VirtAddr kUserEnd{0x00007ffffffff000ull};      // exclusive; canonical lower half
inline constexpr VirtAddr kUserMmapTop{0x00007f0000000000ull};  // mmap grows down from here

// The access that faulted (from the #PF error code).
enum FaultAccess : uint32_t {
  kFaultRead = 0,
  kFaultWrite = 1 << 0,
  kFaultExec = 1 << 1,
  kFaultPresent = 1 << 2,  // the translation was present (protection violation)
};

// What a fault means.
enum class FaultDecision {
  kMapZeroPage,      // inside an area that allows the access, not mapped: map a zeroed frame
  kPermissionFault,  // inside an area that does not allow the access
  kSegv,             // no area contains the address
  kSpurious,         // already mapped with enough rights (another CPU won, or stale TLB)
};

// Return a short name for a decision ("map-zero-page", "permission", "segv", "spurious").
const char* fault_decision_name(FaultDecision decision);

// Outcome of a memory-management call that returns an address or fails.
struct MmResult {
  bool ok = false;
  VirtAddr address;        // the address returned (0 where the call returns none)
  const char* error = "";  // a static message when !ok
};

// Counters of one address space.
struct AddressSpaceStats {
  uint64_t faults = 0;
  uint64_t zero_pages_mapped = 0;
  uint64_t permission_faults = 0;
  uint64_t segv_faults = 0;
  uint64_t spurious_faults = 0;
  uint64_t resident_pages = 0;
};

// A user address space. Constant-initialised; init() before use, destroy() at exit.
class AddressSpace {
 public:
  // Create empty tables sharing `kernel`'s upper half; the heap starts at `brk_base`.
  bool init(BuddyAllocator* buddy, KmemCache* vma_cache, const PageTable& kernel,
            VirtAddr brk_base);
  // Reserve `len` bytes (rounded up to pages) with `prot`; at `hint` if it is free and
  // page-aligned (MAP_FIXED_NOREPLACE-like when `fixed`), else the highest free gap below
  // kUserMmapTop. Returns the start address.
  MmResult mmap(VirtAddr hint, uint64_t len, uint32_t prot, bool fixed);
  // Remove [addr, addr + len) from all areas (splitting them) and unmap it; the caller
  // flushes TLBs per `gather` before releasing it.
  MmResult munmap(VirtAddr addr, uint64_t len, MmuGather& gather);
  // Move the program break (address 0 queries it). Shrinking unmaps. Returns the new break.
  MmResult brk(VirtAddr new_brk, MmuGather& gather);
  // Classify a fault at `address` with access bits `access`.
  FaultDecision decide_fault(VirtAddr address, uint32_t access) const;
  // Classify and, for kMapZeroPage, map a zeroed frame. Return the decision; a demand-zero
  // fault that runs out of memory is reported as kSegv with stats unchanged.
  FaultDecision handle_fault(VirtAddr address, uint32_t access);
  // Unmap everything, free all VMAs and tables.
  void destroy(MmuGather& gather);

  PageTable& page_table() { return table_; }
  const PageTable& page_table() const { return table_; }
  AsidContext& asid_context() { return asid_; }
  const VmaTree& vmas() const { return vmas_; }
  VirtAddr brk_base() const { return brk_base_; }
  VirtAddr brk_current() const { return brk_; }
  AddressSpaceStats stats() const { return stats_; }

 private:
  Vma* new_vma(VirtAddr start, VirtAddr end, uint32_t prot, uint32_t kind);
  bool carve(VirtAddr start, VirtAddr end);
  VirtAddr find_gap(uint64_t len) const;
  static uint64_t pte_attrs(uint32_t prot);

  BuddyAllocator* buddy_ = nullptr;
  KmemCache* vma_cache_ = nullptr;
  PageTable table_;
  VmaTree vmas_;
  AsidContext asid_;
  VirtAddr brk_base_;
  VirtAddr brk_;
  Vma* heap_ = nullptr;
  AddressSpaceStats stats_;
};

}  // namespace hvmm::guest::mm
