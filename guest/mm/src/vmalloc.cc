// vmalloc/vfree with guard pages and lazy, batched TLB purging (see vmalloc.h).
#include "hvmm/guest/mm/vmalloc.h"

namespace hvmm::guest::mm {
namespace {

constexpr uint64_t kPml4Shift = 39;
// Kernel data: writable, never executable, global (the same in every address space).
constexpr uint64_t kVmallocAttrs = kPteWrite | kPteNx | kPteGlobal;

}  // namespace

// Check the range, pre-create its PDPT so the PML4 slot is final, set up the area cache.
bool Vmalloc::init(BuddyAllocator* buddy, PageTable* kernel, VirtRange range) {
  const uint64_t start = range.start.value();
  const uint64_t end = range.end().value();
  if (((start | end) & (kPageSize - 1)) != 0 || range.overflows() || start >= end ||
      (start >> kPml4Shift) != ((end - 1) >> kPml4Shift)) {
    return false;
  }
  buddy_ = buddy;
  kernel_ = kernel;
  start_ = start;
  end_ = end;
  if (!kernel->ensure_top_level(range.start)) {
    return false;
  }
  return area_cache_.init(buddy, "vmap_area", sizeof(Area), 8, kSlabNone);
}

// First fit over the sorted busy list; each area's span includes its guard page.
uint64_t Vmalloc::find_gap(uint64_t span) const {
  uint64_t cursor = start_;
  for (const Area* area = busy_; area != nullptr; area = area->next) {
    if (area->start - cursor >= span) {
      return cursor;
    }
    cursor = area->start + (area->pages + 1) * kPageSize;
  }
  return end_ - cursor >= span ? cursor : 0;
}

// Keep the busy list sorted by start.
void Vmalloc::insert_sorted(Area* area) {
  Area** link = &busy_;
  while (*link != nullptr && (*link)->start < area->start) {
    link = &(*link)->next;
  }
  area->next = *link;
  *link = area;
}

// Remove an area from the busy list.
void Vmalloc::unlink_busy(Area* area) {
  for (Area** link = &busy_; *link != nullptr; link = &(*link)->next) {
    if (*link == area) {
      *link = area->next;
      return;
    }
  }
}

// Find the area containing `address` (its guard page excluded).
Vmalloc::Area* Vmalloc::find_area(uint64_t address, bool live_only) const {
  for (Area* area = busy_; area != nullptr && area->start <= address; area = area->next) {
    if (address < area->start + area->pages * kPageSize && (!live_only || !area->lazy)) {
      return area;
    }
  }
  return nullptr;
}

// Allocate one frame per page and map it; on failure undo what was done.
bool Vmalloc::map_area(Area* area, Gfp gfp) {
  for (uint64_t i = 0; i < area->pages; ++i) {
    Page* page = buddy_->alloc_pages(gfp, 0);
    if (page == nullptr ||
        kernel_->map(VirtAddr(area->start + i * kPageSize), buddy_->page_to_phys(page), kPageSize,
                     kVmallocAttrs, kPageSize) != PtStatus::kOk) {
      if (page != nullptr) {
        buddy_->free_pages(page, 0);
      }
      MmuGather gather(buddy_);
      (void)kernel_->unmap(VirtAddr(area->start), i * kPageSize, gather);
      free_frames(area);
      return false;
    }
    set_page_flags(page, kPageVmalloc);
    page->next = area->frames;
    area->frames = page;
  }
  return true;
}

// Return an area's frames to the buddy allocator.
void Vmalloc::free_frames(Area* area) {
  while (Page* page = area->frames) {
    area->frames = page->next;
    page->next = nullptr;
    set_page_flags(page, 0);
    buddy_->free_pages(page, 0);
  }
}

// Reserve virtual space (purging lazy areas if it is exhausted), then back and map it.
void* Vmalloc::alloc(size_t size, Gfp gfp) {
  const uint64_t pages = (size + kPageSize - 1) / kPageSize;
  if (pages == 0 || pages > (end_ - start_) / kPageSize) {
    return nullptr;
  }
  Area* area = static_cast<Area*>(area_cache_.alloc(gfp));
  if (area == nullptr) {
    return nullptr;
  }
  *area = Area{0, pages, nullptr, nullptr, nullptr, false};
  for (int attempt = 0; attempt < 2 && area->start == 0; ++attempt) {
    if (attempt == 1) {
      purge();
    }
    SpinGuard guard(lock_);
    area->start = find_gap((pages + 1) * kPageSize);
    if (area->start != 0) {
      insert_sorted(area);
    }
  }
  SpinGuard guard(lock_);
  if (area->start == 0 || !map_area(area, gfp)) {
    if (area->start != 0) {
      unlink_busy(area);
    }
    ++stats_.failures;
    area_cache_.free(area);
    return nullptr;
  }
  ++stats_.allocs;
  stats_.mapped_pages += pages;
  return reinterpret_cast<void*>(area->start);
}

// Unmap now, flush later: the area keeps its virtual range and frames until the purge.
void Vmalloc::free(const void* address) {
  if (address == nullptr) {
    return;
  }
  bool purge_now = false;
  {
    SpinGuard guard(lock_);
    const auto va = reinterpret_cast<uint64_t>(address);
    Area* area = find_area(va, true);
    if (area == nullptr || area->start != va) {
      arch::mm_panic("vfree: address is not the start of a live vmalloc area");
    }
    MmuGather gather(buddy_);
    (void)kernel_->unmap(VirtAddr(area->start), area->pages * kPageSize, gather);
    area->lazy = true;
    area->next_lazy = lazy_;
    lazy_ = area;
    ++stats_.frees;
    stats_.mapped_pages -= area->pages;
    stats_.lazy_pages += area->pages;
    purge_now = stats_.lazy_pages >= kLazyMaxPages;
  }
  if (purge_now) {
    purge();
  }
}

// Detach the lazy list, flush its whole span once (lock dropped: the flush waits for other
// CPUs, which may be spinning on this lock), then release frames, ranges and empty area
// slabs of this CPU.
void Vmalloc::purge() {
  Area* list;
  uint64_t lo = ~uint64_t{0};
  uint64_t hi = 0;
  {
    SpinGuard guard(lock_);
    list = lazy_;
    lazy_ = nullptr;
    for (Area* area = list; area != nullptr; area = area->next_lazy) {
      lo = area->start < lo ? area->start : lo;
      const uint64_t end = area->start + area->pages * kPageSize;
      hi = end > hi ? end : hi;
    }
  }
  if (list == nullptr) {
    area_cache_.shrink();
    return;
  }
  arch::flush_tlb_kernel_range(VirtAddr(lo), VirtAddr(hi));
  SpinGuard guard(lock_);
  ++stats_.purges;
  while (Area* area = list) {
    list = area->next_lazy;
    stats_.lazy_pages -= area->pages;
    ++stats_.purged_areas;
    free_frames(area);
    unlink_busy(area);
    area_cache_.free(area);
  }
  area_cache_.shrink();  // purges are rare: give this CPU's empty area slabs back too
}

// The live area's size.
size_t Vmalloc::area_size(const void* address) {
  SpinGuard guard(lock_);
  const Area* area = find_area(reinterpret_cast<uint64_t>(address), true);
  return area == nullptr ? 0 : area->pages * kPageSize;
}

// A snapshot of the counters.
VmallocStats Vmalloc::stats() const {
  return stats_;
}

}  // namespace hvmm::guest::mm
