// x86-64 4-level page tables over buddy frames (see page_table.h).
#include "hvmm/guest/mm/page_table.h"

namespace hvmm::guest::mm {
namespace {

constexpr int kRootLevel = 3;
constexpr uint64_t kEntries = kEntriesPerTable;
// Intermediate entries allow everything; the leaf decides (SDM vol. 3A §4.6).
constexpr uint64_t kTableAttrs = kPtePresent | kPteWrite | kPteUser;
constexpr uint64_t kUserHalfEnd = uint64_t{1} << 47;

// Base's level arithmetic (hvmm/base/levels.h) for the signed levels the walkers count down
// with: bytes mapped by one entry at `level` (0: 4 KiB ... 3: 512 GiB), and va's index there.
uint64_t level_size(int level) {
  return hvmm::level_size(static_cast<unsigned>(level));
}
unsigned level_index(uint64_t va, int level) {
  return hvmm::level_index(va, static_cast<unsigned>(level));
}

// End of the entry containing `va`, clipped to `end` (and safe at the top of the space).
uint64_t entry_end(uint64_t va, int level, uint64_t end) {
  const uint64_t boundary = (va | (level_size(level) - 1)) + 1;
  return (boundary == 0 || boundary > end) ? end : boundary;
}

// Report whether [va, va + len) is non-empty and lies in one canonical half (4-level
// paging: bits 63..47 all equal), so that it never wraps into the other half.
bool canonical_range(uint64_t va, uint64_t len) {
  constexpr uint64_t kKernelHalfStart = 0xffff800000000000ull;
  if (len == 0 || va + len < va) {
    return len == 0 && va < kUserHalfEnd;
  }
  const uint64_t last = va + len - 1;
  return last < kUserHalfEnd || va >= kKernelHalfStart;
}

// Report whether the entry is a leaf at `level`.
bool is_leaf(uint64_t entry, int level) {
  return level == 0 || (entry & kPteHuge) != 0;
}

// Physical address in an entry, for a leaf of `level` or a table pointer.
uint64_t entry_pa(uint64_t entry, int level) {
  const uint64_t mask = level == 0 ? kPteAddrMask : (kPteAddrMask & ~(level_size(level) - 1));
  return (entry & kPteHuge) != 0 ? entry & mask : entry & kPteAddrMask;
}

// The table (or 4 KiB frame) a table entry or level-0 leaf points to.
PhysAddr entry_target(uint64_t entry) {
  return PhysAddr(entry & kPteAddrMask);
}

}  // namespace

// Widen the range to flush.
void MmuGather::add_range(VirtAddr start, VirtAddr end) {
  start_ = start < start_ ? start : start_;
  end_ = end > end_ ? end : end_;
}

// Queue a frame for release after the flush.
void MmuGather::defer_free(Page* page, bool is_table) {
  freed_.push(page);
  tables_freed_ = tables_freed_ || is_table;
}

// Free every queued frame and reset the range.
void MmuGather::release() {
  while (Page* page = freed_.pop()) {
    set_page_flags(page, 0);
    buddy_->free_pages(page, 0);
  }
  start_ = VirtAddr(~uint64_t{0});
  end_ = VirtAddr(0);
  tables_freed_ = false;
}

// Allocate the zeroed root table.
bool PageTable::init(BuddyAllocator* buddy, Gfp gfp) {
  buddy_ = buddy;
  gfp_ = gfp;
  table_pages_ = 0;
  const PhysAddr pa = new_table();
  if (pa == kNoPhys) {
    return false;
  }
  root_ = pa;
  return true;
}

// Copy the kernel's PML4 slots 256..511 (one bulk copy: cheap in the emulated ring 0).
void PageTable::share_kernel_half(const PageTable& kernel) {
  __builtin_memcpy(table_at(root_) + kKernelPml4First,
                   kernel.table_at(kernel.root_) + kKernelPml4First,
                   (kEntries - kKernelPml4First) * sizeof(uint64_t));
}

// The direct-map view of a table page.
uint64_t* PageTable::table_at(PhysAddr pa) const {
  return static_cast<uint64_t*>(arch::phys_to_virt(pa));
}

// Allocate a zeroed table page with no present entries; kNoPhys when out of memory.
PhysAddr PageTable::new_table() {
  const PhysAddr pa = buddy_->alloc_phys(gfp_ | kGfpZero, 0);
  if (pa == kNoPhys) {
    return kNoPhys;
  }
  Page* page = buddy_->phys_to_page(pa);
  set_page_flags(page, kPageTable);
  page->private_data = 0;
  ++table_pages_;
  return pa;
}

// Count a present entry appearing (+1) or disappearing (-1) in the table holding `entry`:
// the count lives in the table's Page, so emptiness is known without scanning 512 entries.
void PageTable::count_entry(const uint64_t* entry, int delta) {
  buddy_->virt_to_page(entry)->private_data += static_cast<uint64_t>(static_cast<int64_t>(delta));
}

// Report whether a table has no present entry.
bool PageTable::table_empty(const uint64_t* table) const {
  return buddy_->virt_to_page(table)->private_data == 0;
}

// Allocate a zeroed table and point `entry` at it.
uint64_t* PageTable::alloc_table(uint64_t* entry) {
  const PhysAddr pa = new_table();
  if (pa == kNoPhys) {
    return nullptr;
  }
  *entry = pa.value() | kTableAttrs;
  count_entry(entry, +1);
  return table_at(pa);
}

// Follow a table entry, creating the table when asked; nullptr at a leaf or when absent.
uint64_t* PageTable::next_table(uint64_t* entry, bool create) {
  if ((*entry & kPtePresent) != 0) {
    return (*entry & kPteHuge) != 0 ? nullptr : table_at(entry_target(*entry));
  }
  return create ? alloc_table(entry) : nullptr;
}

// Pre-create the PDPT behind va's PML4 slot.
bool PageTable::ensure_top_level(VirtAddr va) {
  return next_table(&table_at(root_)[level_index(va.value(), kRootLevel)], true) != nullptr;
}

// Replace a large leaf with a table of 512 leaves one level down, same attributes.
bool PageTable::split_leaf(uint64_t* entry, int level) {
  const uint64_t old = *entry;
  const PhysAddr pa = new_table();
  if (pa == kNoPhys) {
    return false;
  }
  uint64_t* table = table_at(pa);
  const uint64_t attrs = old & ~kPteAddrMask & ~kPteHuge;
  const uint64_t child = level_size(level - 1);
  const uint64_t huge = level - 1 > 0 ? kPteHuge : 0;
  for (uint64_t i = 0; i < kEntries; ++i) {
    table[i] = (entry_pa(old, level) + i * child) | attrs | huge;
  }
  buddy_->phys_to_page(pa)->private_data = kEntries;
  *entry = pa.value() | kTableAttrs;
  return true;
}

// Validate, map level by level, and undo everything done if a step fails.
PtStatus PageTable::map(VirtAddr start, PhysAddr pa, uint64_t len, uint64_t attrs,
                        uint64_t max_page) {
  const uint64_t va = start.value();
  const uint64_t mask = kPageSize - 1;
  if (((va | pa.value() | len) & mask) != 0 || len == 0 || !canonical_range(va, len) ||
      (attrs & ~kPteAttrMask) != 0) {
    return PtStatus::kInvalid;
  }
  progress_ = va;
  const PtStatus status = map_level(table_at(root_), kRootLevel, va, va + len, pa.value(),
                                    attrs | kPtePresent, max_page);
  if (status != PtStatus::kOk && progress_ > va) {
    MmuGather gather(buddy_);
    rolling_back_ = true;
    (void)unmap(start, progress_ - va, gather);
    rolling_back_ = false;
  }
  return status;
}

// Place the largest leaf that fits at each step, descending where it does not.
PtStatus PageTable::map_level(uint64_t* table, int level, uint64_t va, uint64_t end, uint64_t pa,
                              uint64_t attrs, uint64_t max_page) {
  const uint64_t size = level_size(level);
  while (va < end) {
    uint64_t* entry = &table[level_index(va, level)];
    const uint64_t next = entry_end(va, level, end);
    const bool whole = next - va == size && (pa & (size - 1)) == 0;
    if (level <= 2 && size <= max_page && whole) {
      if ((*entry & kPtePresent) != 0) {
        return PtStatus::kExists;
      }
      *entry = pa | attrs | (level > 0 ? kPteHuge : 0);
      count_entry(entry, +1);
    } else {
      if ((*entry & kPtePresent) != 0 && is_leaf(*entry, level)) {
        return PtStatus::kExists;
      }
      uint64_t* sub = next_table(entry, true);
      if (sub == nullptr) {
        return PtStatus::kNoMemory;
      }
      const PtStatus status = map_level(sub, level - 1, va, next, pa, attrs, max_page);
      if (status != PtStatus::kOk) {
        return status;
      }
    }
    progress_ = next;
    pa += next - va;
    va = next;
  }
  return PtStatus::kOk;
}

// Validate and walk.
PtStatus PageTable::unmap(VirtAddr start, uint64_t len, MmuGather& gather) {
  const uint64_t va = start.value();
  if (((va | len) & (kPageSize - 1)) != 0 || (len != 0 && !canonical_range(va, len))) {
    return PtStatus::kInvalid;
  }
  if (len == 0) {
    return PtStatus::kOk;
  }
  return unmap_level(table_at(root_), kRootLevel, va, va + len, gather);
}

// Clear covered leaves (splitting partial large ones) and free emptied user-half tables.
PtStatus PageTable::unmap_level(uint64_t* table, int level, uint64_t va, uint64_t end,
                                MmuGather& gather) {
  const uint64_t size = level_size(level);
  while (va < end) {
    uint64_t* entry = &table[level_index(va, level)];
    const uint64_t next = entry_end(va, level, end);
    const bool whole = next - va == size;
    if ((*entry & kPtePresent) != 0) {
      if (is_leaf(*entry, level) && whole) {
        if ((*entry & kPteOwned) != 0 && !rolling_back_) {
          if (level != 0) {
            arch::mm_panic("page table: owned frames must be 4 KiB pages");
          }
          gather.defer_free(buddy_->phys_to_page(entry_target(*entry)), false);
        }
        *entry = 0;
        count_entry(entry, -1);
        gather.add_range(VirtAddr(va), VirtAddr(next));
        gather.count_unmapped(size / kPageSize);
      } else {
        if (is_leaf(*entry, level) && !split_leaf(entry, level)) {
          return PtStatus::kNoMemory;
        }
        uint64_t* sub = table_at(entry_target(*entry));
        const PtStatus status = unmap_level(sub, level - 1, va, next, gather);
        if (status != PtStatus::kOk) {
          return status;
        }
        const bool user = va < kUserHalfEnd;
        if (user && (whole || table_empty(sub))) {
          gather.defer_free(buddy_->phys_to_page(entry_target(*entry)), true);
          --table_pages_;
          *entry = 0;
          count_entry(entry, -1);
        }
      }
    }
    va = next;
  }
  return PtStatus::kOk;
}

// Validate and walk.
PtStatus PageTable::protect(VirtAddr start, uint64_t len, uint64_t attrs, MmuGather& gather) {
  const uint64_t va = start.value();
  if (((va | len) & (kPageSize - 1)) != 0 || (len != 0 && !canonical_range(va, len)) ||
      (attrs & ~kPteAttrMask) != 0) {
    return PtStatus::kInvalid;
  }
  if (len == 0) {
    return PtStatus::kOk;
  }
  return protect_level(table_at(root_), kRootLevel, va, va + len, attrs | kPtePresent, gather);
}

// Rewrite the attributes of covered leaves (splitting partial large ones); keep kPteOwned.
PtStatus PageTable::protect_level(uint64_t* table, int level, uint64_t va, uint64_t end,
                                  uint64_t attrs, MmuGather& gather) {
  const uint64_t size = level_size(level);
  while (va < end) {
    uint64_t* entry = &table[level_index(va, level)];
    const uint64_t next = entry_end(va, level, end);
    if ((*entry & kPtePresent) != 0) {
      if (is_leaf(*entry, level) && next - va == size) {
        const uint64_t keep = *entry & (kPteAddrMask | kPteHuge | kPteOwned);
        *entry = keep | (attrs & ~kPteOwned);
        gather.add_range(VirtAddr(va), VirtAddr(next));
      } else {
        if (is_leaf(*entry, level) && !split_leaf(entry, level)) {
          return PtStatus::kNoMemory;
        }
        const PtStatus status =
            protect_level(table_at(entry_target(*entry)), level - 1, va, next, attrs, gather);
        if (status != PtStatus::kOk) {
          return status;
        }
      }
    }
    va = next;
  }
  return PtStatus::kOk;
}

// Walk from the root to the leaf covering `va`.
Translation PageTable::translate(VirtAddr address) const {
  const uint64_t va = address.value();
  const uint64_t* table = table_at(root_);
  for (int level = kRootLevel; level >= 0; --level) {
    const uint64_t entry = table[level_index(va, level)];
    if ((entry & kPtePresent) == 0) {
      return Translation{};
    }
    if (level <= 2 && is_leaf(entry, level)) {
      const uint64_t size = level_size(level);
      return Translation{true, PhysAddr(entry_pa(entry, level) + (va & (size - 1))),
                         entry & ~kPteAddrMask, size};
    }
    table = table_at(entry_target(entry));
  }
  return Translation{};
}

// Queue every table (and owned frame) under `table` for freeing.
void PageTable::free_tree(uint64_t* table, int level, MmuGather& gather) {
  for (uint64_t i = 0; i < kEntries; ++i) {
    const uint64_t entry = table[i];
    if ((entry & kPtePresent) == 0) {
      continue;
    }
    if (is_leaf(entry, level)) {
      if ((entry & kPteOwned) != 0 && level == 0) {
        gather.defer_free(buddy_->phys_to_page(entry_target(entry)), false);
      }
      continue;
    }
    uint64_t* sub = table_at(entry_target(entry));
    free_tree(sub, level - 1, gather);
    gather.defer_free(buddy_->phys_to_page(entry_target(entry)), true);
    --table_pages_;
  }
}

// Free the user half, then the root; the caller flushes the ASID before release().
void PageTable::destroy(MmuGather& gather) {
  if (root_ == PhysAddr()) {
    return;
  }
  uint64_t* root = table_at(root_);
  for (unsigned i = 0; i < kKernelPml4First; ++i) {
    if ((root[i] & kPtePresent) != 0) {
      uint64_t* sub = table_at(entry_target(root[i]));
      free_tree(sub, kRootLevel - 1, gather);
      gather.defer_free(buddy_->phys_to_page(entry_target(root[i])), true);
      --table_pages_;
      root[i] = 0;
    }
  }
  gather.add_range(VirtAddr(0), VirtAddr(kUserHalfEnd));
  gather.defer_free(buddy_->phys_to_page(root_), true);
  --table_pages_;
  root_ = PhysAddr();
}

}  // namespace hvmm::guest::mm
