// Vmalloc: virtually contiguous kernel memory from scattered frames, with guard pages.
//
// Each area takes its pages plus one unmapped guard page after them from the vmalloc
// virtual range; the busy areas are kept sorted by address and searched first-fit. vfree
// unmaps at once but flushes lazily: the area (its virtual range and its frames) waits on
// a purge list, and once kLazyMaxPages pages are waiting, or the range is exhausted, one
// flush_tlb_kernel_range() covering all of them is issued and they are all released.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hvmm/guest/mm/buddy.h"
#include "hvmm/guest/mm/page_table.h"
#include "hvmm/guest/mm/slab.h"

namespace hvmm::guest::mm {

// Counters of the vmalloc area.
struct VmallocStats {
  uint64_t allocs = 0;
  uint64_t frees = 0;
  uint64_t failures = 0;
  uint64_t mapped_pages = 0;  // pages currently mapped by live areas
  uint64_t lazy_pages = 0;    // pages unmapped but not yet flushed
  uint64_t purges = 0;        // batched flushes issued
  uint64_t purged_areas = 0;  // areas released by those flushes
};

// The vmalloc allocator. Constant-initialised; init() before use.
class Vmalloc {
 public:
  static constexpr uint64_t kLazyMaxPages = 1024;  // purge once this many pages wait

  // Manage virtual range `range` of `kernel`'s tables. The range must be page-aligned and sit
  // inside one PML4 slot; init pre-creates that slot's PDPT so the slot never changes later
  // (user address spaces copy kernel PML4 slots once).
  bool init(BuddyAllocator* buddy, PageTable* kernel, VirtRange range);
  // Allocate `size` bytes (rounded up to pages) of mapped, writable, non-executable memory.
  void* alloc(size_t size, Gfp gfp = kGfpKernel);
  // Unmap an area returned by alloc (lazily flushed). nullptr is ignored.
  void free(const void* address);
  // Flush and release every lazily freed area now.
  void purge();
  // Return the size in bytes (without guard) of the live area containing `address`, or 0.
  size_t area_size(const void* address);
  VmallocStats stats() const;

 private:
  struct Area {
    uint64_t start;
    uint64_t pages;   // mapped pages (guard page not counted)
    Area* next;       // sorted busy list (lazily freed areas stay on it until purged)
    Area* next_lazy;  // purge list
    Page* frames;     // frames, linked by Page::next, until they are freed
    bool lazy;        // freed by vfree, waiting for the batched flush
  };

  uint64_t find_gap(uint64_t span) const;
  void insert_sorted(Area* area);
  Area* find_area(uint64_t address, bool live_only) const;
  void unlink_busy(Area* area);
  bool map_area(Area* area, Gfp gfp);
  void free_frames(Area* area);

  BuddyAllocator* buddy_ = nullptr;
  PageTable* kernel_ = nullptr;
  uint64_t start_ = 0;
  uint64_t end_ = 0;
  SpinLock lock_;
  Area* busy_ = nullptr;  // sorted by start; includes lazily freed areas (VA not reusable)
  Area* lazy_ = nullptr;  // areas waiting for the batched flush
  KmemCache area_cache_;
  VmallocStats stats_;
};

}  // namespace hvmm::guest::mm
