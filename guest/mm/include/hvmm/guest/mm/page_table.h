// PageTable: x86-64 4-level stage-1 tables (PML4 → PDPT → PD → PT) over buddy frames.
//
// Levels are numbered as in Hafnium: 3 is the root (PML4), 0 the page table; a leaf at
// level 2 maps 1 GiB, at level 1 2 MiB, at level 0 4 KiB (Intel SDM vol. 3A §4.5, tables
// 4-15 to 4-20). Table pages come from the buddy allocator, zeroed, and are accessed
// through the direct map (arch::phys_to_virt). No function here flushes a TLB: unmap and
// protect record what changed in an MmuGather, and the caller flushes (one CPU or all by
// shootdown) before MmuGather::release() frees the frames and tables the change dropped.
#pragma once

#include <cstdint>

#include "hvmm/guest/mm/buddy.h"

namespace hvmm::guest::mm {

// Entry bits (SDM vol. 3A table 4-19/4-20).
inline constexpr uint64_t kPtePresent = 1ull << 0;
inline constexpr uint64_t kPteWrite = 1ull << 1;
inline constexpr uint64_t kPteUser = 1ull << 2;
inline constexpr uint64_t kPtePwt = 1ull << 3;
inline constexpr uint64_t kPtePcd = 1ull << 4;
inline constexpr uint64_t kPteAccessed = 1ull << 5;
inline constexpr uint64_t kPteDirty = 1ull << 6;
inline constexpr uint64_t kPteHuge = 1ull << 7;  // PS: this entry at level 1 or 2 is a leaf
inline constexpr uint64_t kPteGlobal = 1ull << 8;
inline constexpr uint64_t kPteOwned =
    1ull << 9;  // software: the frame belongs to the mapping, freed on unmap
inline constexpr uint64_t kPteNx = 1ull << 63;
inline constexpr uint64_t kPteAddrMask = 0x000ffffffffff000ull;
// The attribute bits callers pass to map/protect.
inline constexpr uint64_t kPteAttrMask =
    kPteWrite | kPteUser | kPtePwt | kPtePcd | kPteGlobal | kPteOwned | kPteNx;

// Leaf sizes are base's: kPageSize (4 KiB), kLargePageSize (2 MiB), kHugePageSize (1 GiB).

// The first kernel-half PML4 slot (addresses from 0xffff800000000000).
inline constexpr unsigned kKernelPml4First = 256;

// Outcome of a table operation.
enum class PtStatus { kOk, kNoMemory, kInvalid, kExists };

// The result of translate().
struct Translation {
  bool present = false;
  PhysAddr pa;             // physical address of the byte at va
  uint64_t flags = 0;      // leaf entry bits without the address
  uint64_t page_size = 0;  // 4K, 2M or 1G
};

// What an unmap/protect changed: the range to flush, and frames to free after the flush.
class MmuGather {
 public:
  explicit MmuGather(BuddyAllocator* buddy) : buddy_(buddy) { freed_.init(); }
  MmuGather(const MmuGather&) = delete;
  MmuGather& operator=(const MmuGather&) = delete;
  ~MmuGather() { release(); }

  // Record that [start, end) lost or changed translations.
  void add_range(VirtAddr start, VirtAddr end);
  // Queue a frame (or table) for freeing after the flush.
  void defer_free(Page* page, bool is_table);
  // Free the queued frames: call after the TLB flush covering range().
  void release();

  bool need_flush() const { return start_ < end_; }
  VirtAddr start() const { return start_; }
  VirtAddr end() const { return end_; }
  // True if page-table pages were freed: CPUs in lazy-TLB mode must flush too.
  bool tables_freed() const { return tables_freed_; }
  uint64_t pages_unmapped() const { return pages_unmapped_; }
  void count_unmapped(uint64_t pages) { pages_unmapped_ += pages; }

 private:
  BuddyAllocator* buddy_;
  PageList freed_;
  VirtAddr start_{~uint64_t{0}};
  VirtAddr end_;
  uint64_t pages_unmapped_ = 0;
  bool tables_freed_ = false;
};

// One address space's tables. Constant-initialised; init() or adopt() before use.
class PageTable {
 public:
  // Allocate an empty PML4. Return false if out of memory.
  bool init(BuddyAllocator* buddy, Gfp gfp = kGfpKernel);
  // Share the kernel half (PML4 slots 256..511) of `kernel`: the entries are copied, so
  // the kernel must pre-populate every kernel-half slot it will ever use before this.
  void share_kernel_half(const PageTable& kernel);
  PhysAddr root() const { return root_; }
  // Make sure the PML4 slot of `va` points to a PDPT (so it can be shared before use).
  bool ensure_top_level(VirtAddr va);

  // Map [va, va + len) to [pa, pa + len) with `attrs` (kPteAttrMask bits; present is
  // implied), using pages of at most `max_page` bytes where alignment allows. All of va,
  // pa and len must be 4 KiB aligned and the range must be unmapped (kExists otherwise).
  // On failure nothing is left mapped.
  PtStatus map(VirtAddr va, PhysAddr pa, uint64_t len, uint64_t attrs,
               uint64_t max_page = kHugePageSize);
  // Remove translations in [va, va + len), splitting large pages at the edges; frames
  // mapped with kPteOwned (4 KiB only) and emptied user-half tables are queued on
  // `gather`. Kernel-half tables are never freed (as in Linux: they are shared by every
  // address space through the copied PML4 slots).
  PtStatus unmap(VirtAddr va, uint64_t len, MmuGather& gather);
  // Replace the attributes of present translations in [va, va + len).
  PtStatus protect(VirtAddr va, uint64_t len, uint64_t attrs, MmuGather& gather);
  // Look up the translation of `va`.
  Translation translate(VirtAddr va) const;
  // Unmap the user half and free every user-half table, then the root (process exit).
  void destroy(MmuGather& gather);
  // Return how many table pages this address space owns (root included).
  uint64_t table_pages() const { return table_pages_; }

 private:
  uint64_t* table_at(PhysAddr pa) const;
  PhysAddr new_table();
  void count_entry(const uint64_t* entry, int delta);
  bool table_empty(const uint64_t* table) const;
  uint64_t* alloc_table(uint64_t* entry);
  uint64_t* next_table(uint64_t* entry, bool create);
  bool split_leaf(uint64_t* entry, int level);
  PtStatus map_level(uint64_t* table, int level, uint64_t va, uint64_t end, uint64_t pa,
                     uint64_t attrs, uint64_t max_page);
  PtStatus unmap_level(uint64_t* table, int level, uint64_t va, uint64_t end, MmuGather& gather);
  PtStatus protect_level(uint64_t* table, int level, uint64_t va, uint64_t end, uint64_t attrs,
                         MmuGather& gather);
  void free_tree(uint64_t* table, int level, MmuGather& gather);

  BuddyAllocator* buddy_ = nullptr;
  PhysAddr root_;
  uint64_t progress_ = 0;      // end of what map() has done so far (for its rollback)
  bool rolling_back_ = false;  // unmap is undoing a failed map: keep owned frames
  uint64_t table_pages_ = 0;
  Gfp gfp_ = kGfpKernel;
};

}  // namespace hvmm::guest::mm
