// A user address space: VMAs, brk/mmap/munmap and demand paging (see address_space.h).
#include "hvmm/guest/mm/address_space.h"

#include <new>

namespace hvmm::guest::mm {
namespace {

// Round up to a page; 0 stays 0, overflow becomes 0 (rejected by callers).
uint64_t page_round_up(uint64_t value) {
  return align_up(value, kPageSize);
}
VirtAddr page_round_up(VirtAddr address) {
  return address.align_up(kPageSize);
}

// "No address": mmap's gap search and hint checks never produce the page at 0.
constexpr VirtAddr kNoVirt{0};

// The VMA right an access needs (x86 cannot express write-only: write implies read).
bool access_allowed(uint32_t prot, uint32_t access) {
  if ((access & kFaultWrite) != 0) {
    return (prot & kVmWrite) != 0;
  }
  if ((access & kFaultExec) != 0) {
    return (prot & kVmExec) != 0;
  }
  return (prot & (kVmRead | kVmWrite | kVmExec)) != 0;
}

// Whether a present leaf already grants the access.
bool pte_allows(uint64_t flags, uint32_t access) {
  if ((flags & kPteUser) == 0) {
    return false;
  }
  if ((access & kFaultWrite) != 0 && (flags & kPteWrite) == 0) {
    return false;
  }
  return (access & kFaultExec) == 0 || (flags & kPteNx) == 0;
}

}  // namespace

// Short names for logs.
const char* fault_decision_name(FaultDecision decision) {
  switch (decision) {
    case FaultDecision::kMapZeroPage:
      return "map-zero-page";
    case FaultDecision::kPermissionFault:
      return "permission";
    case FaultDecision::kSegv:
      return "segv";
    case FaultDecision::kSpurious:
      return "spurious";
  }
  return "?";
}

// Empty tables sharing the kernel half; empty heap at brk_base.
bool AddressSpace::init(BuddyAllocator* buddy, KmemCache* vma_cache, const PageTable& kernel,
                        VirtAddr brk_base) {
  buddy_ = buddy;
  vma_cache_ = vma_cache;
  if (!table_.init(buddy)) {
    return false;
  }
  table_.share_kernel_half(kernel);
  brk_base_ = brk_ = page_round_up(brk_base);
  heap_ = nullptr;
  stats_ = AddressSpaceStats{};
  return true;
}

// Leaf attributes for an area's rights: user, writable if PROT_WRITE, NX unless PROT_EXEC.
uint64_t AddressSpace::pte_attrs(uint32_t prot) {
  uint64_t attrs = kPteUser;
  if ((prot & kVmWrite) != 0) {
    attrs |= kPteWrite;
  }
  if ((prot & kVmExec) == 0) {
    attrs |= kPteNx;
  }
  return attrs;
}

// Allocate and fill a Vma from the cache (nullptr when out of memory).
Vma* AddressSpace::new_vma(VirtAddr start, VirtAddr end, uint32_t prot, uint32_t kind) {
  void* memory = vma_cache_->alloc(kGfpKernel);
  if (memory == nullptr) {
    return nullptr;
  }
  Vma* vma = new (memory) Vma{};
  vma->start = start;
  vma->end = end;
  vma->prot = prot;
  vma->kind = kind;
  return vma;
}

// Highest gap of `len` bytes below kUserMmapTop and above kUserStart, or kNoVirt.
VirtAddr AddressSpace::find_gap(uint64_t len) const {
  VirtAddr gap_end = kUserMmapTop;
  const Vma* vma = vmas_.last();
  while (vma != nullptr && vma->start >= gap_end) {
    vma = VmaTree::prev(vma);
  }
  for (;;) {
    VirtAddr lower = vma != nullptr ? vma->end : kUserStart;
    if (vma == nullptr && brk_ > lower) {
      lower = page_round_up(brk_);
    }
    if (gap_end >= lower && gap_end - lower >= len) {
      return gap_end - len;
    }
    if (vma == nullptr) {
      return kNoVirt;
    }
    gap_end = vma->start;
    vma = VmaTree::prev(vma);
  }
}

// Place the area at the hint when it is free, else in the highest gap.
MmResult AddressSpace::mmap(VirtAddr hint, uint64_t len, uint32_t prot, bool fixed) {
  len = page_round_up(len);
  if (len == 0 || len > kUserEnd - kUserStart) {
    return MmResult{false, kNoVirt, "mmap: length is zero or larger than the user half"};
  }
  VirtAddr addr = kNoVirt;
  const bool hint_usable =
      hint != kNoVirt && hint.is_aligned(kPageSize) && hint >= kUserStart && hint <= kUserEnd - len;
  if (hint_usable) {
    const Vma* next = vmas_.find_next(hint);
    if (next == nullptr || next->start >= hint + len) {
      addr = hint;
    }
  }
  if (addr == kNoVirt && fixed) {
    return MmResult{false, kNoVirt, "mmap: fixed range is not free or not in the user half"};
  }
  if (addr == kNoVirt) {
    addr = find_gap(len);
  }
  if (addr == kNoVirt) {
    return MmResult{false, kNoVirt, "mmap: no free range large enough"};
  }
  Vma* vma = new_vma(addr, addr + len, prot, kVmaAnon);
  if (vma == nullptr) {
    return MmResult{false, kNoVirt, "mmap: out of memory for the area"};
  }
  (void)vmas_.insert(vma);
  return MmResult{true, addr, ""};
}

// Remove [start, end) from the VMA tree; allocates the one split piece first, so a
// failure leaves every area unchanged.
bool AddressSpace::carve(VirtAddr start, VirtAddr end) {
  Vma* containing = vmas_.find(start);
  Vma* spare = nullptr;
  if (containing != nullptr && containing->start < start && containing->end > end) {
    spare = new_vma(end, containing->end, containing->prot, containing->kind);
    if (spare == nullptr) {
      return false;
    }
    containing->end = start;
    (void)vmas_.insert(spare);
    return true;
  }
  for (Vma* vma = vmas_.find_next(start); vma != nullptr && vma->start < end;) {
    Vma* next = VmaTree::next(vma);
    if (vma->start >= start && vma->end <= end) {
      vmas_.erase(vma);
      if (vma == heap_) {
        heap_ = nullptr;
      }
      vma_cache_->free(vma);
    } else if (vma->start < start) {
      vma->end = start;
    } else {
      vma->start = end;
    }
    vma = next;
  }
  return true;
}

// Carve the areas, then unmap the range (frames are freed by the caller's gather).
MmResult AddressSpace::munmap(VirtAddr addr, uint64_t len, MmuGather& gather) {
  len = page_round_up(len);
  if (!addr.is_aligned(kPageSize) || len == 0 || addr < kUserStart || addr > kUserEnd - len) {
    return MmResult{false, kNoVirt, "munmap: range is unaligned, empty or outside the user half"};
  }
  if (!carve(addr, addr + len)) {
    return MmResult{false, kNoVirt, "munmap: out of memory splitting an area"};
  }
  const uint64_t before = gather.pages_unmapped();
  if (table_.unmap(addr, len, gather) != PtStatus::kOk) {
    return MmResult{false, kNoVirt, "munmap: out of memory splitting a large page"};
  }
  stats_.resident_pages -= gather.pages_unmapped() - before;
  return MmResult{true, kNoVirt, ""};
}

// Grow the heap area (refusing to run into another area) or shrink it and unmap.
MmResult AddressSpace::brk(VirtAddr new_brk, MmuGather& gather) {
  if (new_brk == kNoVirt) {
    return MmResult{true, brk_, ""};
  }
  if (new_brk < brk_base_ || new_brk > kUserMmapTop) {
    return MmResult{false, brk_, "brk: below the heap start or above the mmap area"};
  }
  const VirtAddr old_top = page_round_up(brk_);
  const VirtAddr new_top = page_round_up(new_brk);
  if (new_top > old_top) {
    const Vma* next = vmas_.find_next(old_top);
    if (next != nullptr && next->start < new_top) {
      return MmResult{false, brk_, "brk: the heap would run into a mapping"};
    }
    if (heap_ != nullptr && heap_->end == old_top) {
      heap_->end = new_top;
    } else {
      Vma* heap = new_vma(old_top, new_top, kVmRead | kVmWrite, kVmaHeap);
      if (heap == nullptr) {
        return MmResult{false, brk_, "brk: out of memory for the heap area"};
      }
      (void)vmas_.insert(heap);
      heap_ = heap;
    }
  } else if (new_top < old_top) {
    MmResult r = munmap(new_top, old_top - new_top, gather);
    if (!r.ok) {
      return MmResult{false, brk_, r.error};
    }
  }
  brk_ = new_brk;
  return MmResult{true, brk_, ""};
}

// No area: SEGV. Area without the right: permission. Mapped with the right: spurious.
FaultDecision AddressSpace::decide_fault(VirtAddr address, uint32_t access) const {
  const Vma* vma = vmas_.find(address);
  if (vma == nullptr) {
    return FaultDecision::kSegv;
  }
  if (!access_allowed(vma->prot, access)) {
    return FaultDecision::kPermissionFault;
  }
  const Translation t = table_.translate(address);
  if (!t.present) {
    return FaultDecision::kMapZeroPage;
  }
  return pte_allows(t.flags, access) ? FaultDecision::kSpurious : FaultDecision::kPermissionFault;
}

// Decide, and for demand-zero faults map a zeroed owned frame with the area's rights.
FaultDecision AddressSpace::handle_fault(VirtAddr address, uint32_t access) {
  const FaultDecision decision = decide_fault(address, access);
  ++stats_.faults;
  switch (decision) {
    case FaultDecision::kPermissionFault:
      ++stats_.permission_faults;
      return decision;
    case FaultDecision::kSegv:
      ++stats_.segv_faults;
      return decision;
    case FaultDecision::kSpurious:
      ++stats_.spurious_faults;
      return decision;
    case FaultDecision::kMapZeroPage:
      break;
  }
  const Vma* vma = vmas_.find(address);
  Page* page = buddy_->alloc_pages(kGfpZero, 0);
  const VirtAddr va = address.align_down(kPageSize);
  if (page == nullptr || table_.map(va, buddy_->page_to_phys(page), kPageSize,
                                    pte_attrs(vma->prot) | kPteOwned, kPageSize) != PtStatus::kOk) {
    buddy_->free_pages(page, 0);
    --stats_.faults;
    return FaultDecision::kSegv;
  }
  ++stats_.zero_pages_mapped;
  ++stats_.resident_pages;
  return decision;
}

// Free every area and the tables (owned frames go to the gather).
void AddressSpace::destroy(MmuGather& gather) {
  while (Vma* vma = vmas_.first()) {
    vmas_.erase(vma);
    vma_cache_->free(vma);
  }
  heap_ = nullptr;
  table_.destroy(gather);
  stats_.resident_pages = 0;
}

}  // namespace hvmm::guest::mm
