// The buddy page allocator (see buddy.h and guest/mm/DESIGN.md).
#include "hvmm/guest/mm/buddy.h"

namespace hvmm::guest::mm {
namespace {

// The first frame above 4 GiB: where ZONE_NORMAL starts.
constexpr uint64_t kDma32EndPfn = (uint64_t{4} << 30) >> kPageShift;

// Return the smaller of two frame numbers.
uint64_t min_pfn(uint64_t a, uint64_t b) {
  return a < b ? a : b;
}
uint64_t max_pfn(uint64_t a, uint64_t b) {
  return a > b ? a : b;
}

}  // namespace

// Link `page` after the sentinel (LIFO: the most recently freed frame is reused first).
void PageList::push(Page* page) {
  page->next = head.next;
  page->prev = &head;
  head.next->prev = page;
  head.next = page;
  ++count;
}

// Link `page` before the sentinel (reported blocks go last: allocations prefer the others).
void PageList::push_tail(Page* page) {
  page->prev = head.prev;
  page->next = &head;
  head.prev->next = page;
  head.prev = page;
  ++count;
}

// Unlink and return the first page, or nullptr when empty.
Page* PageList::pop() {
  if (empty()) {
    return nullptr;
  }
  Page* page = head.next;
  remove(page);
  return page;
}

// Unlink `page`, which must be on this list.
void PageList::remove(Page* page) {
  page->prev->next = page->next;
  page->next->prev = page->prev;
  page->next = page->prev = nullptr;
  --count;
}

// Allocate the Page array, zero it in one go (unless RAM is known to be zero), split RAM
// into zones, free the free ranges.
bool BuddyAllocator::init(Memblock& memblock, bool memory_is_zero) {
  memory_is_zero_ = memory_is_zero;
  start_pfn_ = memblock.start_pfn();
  end_pfn_ = memblock.end_pfn();
  const uint64_t bytes = align_up((end_pfn_ - start_pfn_) * sizeof(Page), kPageSize);
  const PhysAddr pa = memblock.alloc(bytes, kPageSize);
  if (pa == kNoPhys) {
    return false;
  }
  pages_ = static_cast<Page*>(arch::phys_to_virt(pa));
  if (!memory_is_zero) {
    __builtin_memset(static_cast<void*>(pages_), 0, bytes);
  }
  zones_[kZoneDma32].start_pfn = start_pfn_;
  zones_[kZoneDma32].end_pfn = min_pfn(end_pfn_, kDma32EndPfn);
  zones_[kZoneNormal].start_pfn = max_pfn(start_pfn_, kDma32EndPfn);
  zones_[kZoneNormal].end_pfn = max_pfn(end_pfn_, kDma32EndPfn);
  for (Zone& zone : zones_) {
    for (PageList& list : zone.free_area) {
      list.init();
    }
    for (PerCpuList& pcp : zone.pcp) {
      pcp.list.init();
    }
  }
  memblock.for_each_free_range([this](PhysRange free) {
    release_range(free.start.page_number(), free.end().page_number());
  });
  for (Zone& zone : zones_) {
    setup_watermarks(zone);
  }
  return true;
}

// Hand [start, end) to its zones as the largest naturally aligned blocks (one write each).
void BuddyAllocator::release_range(uint64_t start, uint64_t end) {
  uint64_t pfn = start;
  while (pfn < end) {
    const ZoneId id = pfn < kDma32EndPfn ? kZoneDma32 : kZoneNormal;
    const uint64_t limit = min_pfn(end, zones_[id].end_pfn);
    unsigned order = kMaxOrder;
    while (order > 0 &&
           ((pfn & ((uint64_t{1} << order) - 1)) != 0 || pfn + (uint64_t{1} << order) > limit)) {
      --order;
    }
    Zone& zone = zones_[id];
    zone.stats.managed_pages += uint64_t{1} << order;
    free_block(zone, pfn_to_page(pfn), order);
    pfn += uint64_t{1} << order;
  }
}

// Derive min/low/high from the zone size: min ~ 1/128 of the zone, low 5/4, high 3/2.
void BuddyAllocator::setup_watermarks(Zone& zone) {
  uint64_t min = zone.stats.managed_pages / 128;
  if (min < 8 && zone.stats.managed_pages >= 64) {
    min = 8;
  }
  if (min > 16384) {
    min = 16384;
  }
  zone.stats.watermark_min = min;
  zone.stats.watermark_low = min + min / 4;
  zone.stats.watermark_high = min + min / 2;
}

// Allow the allocation if it leaves the zone at or above its floor (min, or min/2 atomic).
bool BuddyAllocator::watermark_ok(Zone& zone, Gfp gfp, unsigned order) {
  uint64_t floor = zone.stats.watermark_min;
  if ((gfp & kGfpAtomic) != 0) {
    floor /= 2;
  }
  return zone.stats.free_pages >= (uint64_t{1} << order) + floor;
}

// Take a free block off its list: free and reported counts follow, its flags are cleared.
void BuddyAllocator::unlink_free(Zone& zone, Page* page, unsigned order) {
  zone.free_area[order].remove(page);
  if ((page_flags(page) & kPageReported) != 0) {
    zone.stats.reported_pages -= uint64_t{1} << order;
  }
  set_page_flags(page, 0);
  page->order = 0;
  zone.stats.free_pages -= uint64_t{1} << order;
}

// Take a block of `order` from the smallest non-empty list, splitting larger blocks. The
// first block of a list is taken: unreported blocks come before reported ones.
Page* BuddyAllocator::remove_block(Zone& zone, unsigned order) {
  for (unsigned o = order; o < kNrOrders; ++o) {
    if (zone.free_area[o].empty()) {
      continue;
    }
    Page* page = zone.free_area[o].head.next;
    unlink_free(zone, page, o);
    while (o > order) {
      --o;
      Page* half = page + (uint64_t{1} << o);
      set_page_flags(half, kPageBuddy);
      half->order = static_cast<uint8_t>(o);
      half->zone = page->zone;
      zone.free_area[o].push(half);
      zone.stats.free_pages += uint64_t{1} << o;
      ++zone.stats.splits;
    }
    return page;
  }
  return nullptr;
}

// Merge with free buddies of equal order while possible, then list the result; return its
// order. `notify`: count a result of a reportable order for free page reporting. `reported`:
// a block coming back from reporting that does not merge keeps the mark (listed last).
unsigned BuddyAllocator::free_block(Zone& zone, Page* page, unsigned order, bool notify,
                                    bool reported) {
  uint64_t pfn = page_to_pfn(page);
  const uint8_t zone_id = static_cast<uint8_t>(&zone - zones_);
  const unsigned first_order = order;
  while (order < kMaxOrder) {
    const uint64_t buddy_pfn = pfn ^ (uint64_t{1} << order);
    if (buddy_pfn < zone.start_pfn || buddy_pfn >= zone.end_pfn) {
      break;
    }
    Page* buddy = pfn_to_page(buddy_pfn);
    if ((page_flags(buddy) & kPageBuddy) == 0 || buddy->order != order) {
      break;
    }
    unlink_free(zone, buddy, order);
    ++zone.stats.merges;
    pfn &= ~(uint64_t{1} << order);
    ++order;
  }
  Page* head = pfn_to_page(pfn);
  head->order = static_cast<uint8_t>(order);
  head->zone = zone_id;
  if (reported && order == first_order) {
    set_page_flags(head, kPageBuddy | kPageReported);
    zone.free_area[order].push_tail(head);
    zone.stats.reported_pages += uint64_t{1} << order;
  } else {
    set_page_flags(head, kPageBuddy);
    zone.free_area[order].push(head);
  }
  zone.stats.free_pages += uint64_t{1} << order;
  if (notify && order >= report_order_) {
    __atomic_fetch_add(&report_notify_, uint64_t{1} << order, __ATOMIC_RELAXED);
  }
  return order;
}

// Allocate from the zones; on failure let the OOM hook free frames and try once more.
Page* BuddyAllocator::alloc_pages(Gfp gfp, unsigned order) {
  if (order > kMaxOrder) {
    return nullptr;
  }
  Page* page = alloc_zones(gfp, order);
  OomHook hook = __atomic_load_n(&oom_hook_, __ATOMIC_ACQUIRE);
  if (page != nullptr || (gfp & kGfpNoOom) != 0 || hook == nullptr) {
    return page;
  }
  __atomic_fetch_add(&oom_calls_, 1, __ATOMIC_RELAXED);
  const uint64_t freed = hook(oom_context_, uint64_t{1} << order);
  if (freed == 0) {
    return nullptr;
  }
  __atomic_fetch_add(&oom_pages_, freed, __ATOMIC_RELAXED);
  return alloc_zones(gfp, order);
}

// Try NORMAL then DMA32 (DMA32 only with kGfpDma32); zero the result on kGfpZero.
Page* BuddyAllocator::alloc_zones(Gfp gfp, unsigned order) {
  Page* page = nullptr;
  const int first = (gfp & kGfpDma32) != 0 ? kZoneDma32 : kZoneNormal;
  for (int id = first; id >= 0 && page == nullptr; --id) {
    Zone& zone = zones_[id];
    if (zone.stats.managed_pages == 0) {
      continue;
    }
    page = order == 0 ? alloc_pcp(zone, gfp) : alloc_from_zone(zone, gfp, order);
  }
  if (page != nullptr && (gfp & kGfpZero) != 0) {
    zero_block(page, order);
  }
  return page;
}

// Clear a block for kGfpZero: all of it, or with zero RAM only frames used before.
void BuddyAllocator::zero_block(Page* page, unsigned order) {
  ZoneStats& stats = zone_of(page).stats;
  if (!memory_is_zero_) {
    __builtin_memset(page_address(page), 0, kPageSize << order);
    __atomic_add_fetch(&stats.pages_zeroed, uint64_t{1} << order, __ATOMIC_RELAXED);
    return;
  }
  uint64_t zeroed = 0;
  for (uint64_t i = 0; i < (uint64_t{1} << order); ++i) {
    if (page[i].dirty != 0) {
      __builtin_memset(page_address(page + i), 0, kPageSize);
      ++zeroed;
    }
  }
  __atomic_add_fetch(&stats.pages_zeroed, zeroed, __ATOMIC_RELAXED);
  __atomic_add_fetch(&stats.zeroing_skipped, (uint64_t{1} << order) - zeroed, __ATOMIC_RELAXED);
}

// Serve order > 0 from the zone's lists under its lock, honouring the watermarks.
Page* BuddyAllocator::alloc_from_zone(Zone& zone, Gfp gfp, unsigned order) {
  SpinGuard guard(zone.lock);
  if (zone.stats.free_pages < zone.stats.watermark_low + (uint64_t{1} << order)) {
    ++zone.stats.below_low;
  }
  Page* page = watermark_ok(zone, gfp, order) ? remove_block(zone, order) : nullptr;
  if (page == nullptr) {
    ++zone.stats.failures;
    return nullptr;
  }
  ++zone.stats.alloc_count[order];
  return page;
}

// Pop from this CPU's list; refill a batch under the zone lock when it is empty.
Page* BuddyAllocator::alloc_pcp(Zone& zone, Gfp gfp) {
  IrqGuard irq;
  PerCpuList& pcp = zone.pcp[arch::this_cpu()];
  if (pcp.list.empty()) {
    SpinGuard guard(zone.lock);
    if (zone.stats.free_pages < zone.stats.watermark_low + kPcpBatch) {
      ++zone.stats.below_low;
    }
    for (unsigned n = 0; n < kPcpBatch && watermark_ok(zone, gfp, 0); ++n) {
      Page* page = remove_block(zone, 0);
      if (page == nullptr) {
        break;
      }
      set_page_flags(page, kPagePcp);
      pcp.list.push(page);
    }
    ++zone.stats.pcp_refills;
    if (pcp.list.empty()) {
      ++zone.stats.failures;
      return nullptr;
    }
  } else {
    ++pcp.hits;
  }
  Page* page = pcp.list.pop();
  set_page_flags(page, 0);
  ++pcp.allocs;
  return page;
}

// Mark the frames used, then give them back: order 0 to this CPU's list, larger blocks to
// the zone.
void BuddyAllocator::free_pages(Page* page, unsigned order) {
  if (page == nullptr) {
    return;
  }
  if ((page_flags(page) & (kPageBuddy | kPagePcp)) != 0) {
    arch::mm_panic("buddy: double free of a page");
  }
  for (uint64_t i = 0; i < (uint64_t{1} << order); ++i) {
    page[i].dirty = 1;  // the owner may have written anything
  }
  Zone& zone = zone_of(page);
  if (order == 0) {
    free_pcp(zone, page);
    return;
  }
  SpinGuard guard(zone.lock);
  ++zone.stats.free_count[order];
  free_block(zone, page, order);
}

// Push on this CPU's list; past kPcpHigh return a batch to the zone.
void BuddyAllocator::free_pcp(Zone& zone, Page* page) {
  IrqGuard irq;
  PerCpuList& pcp = zone.pcp[arch::this_cpu()];
  set_page_flags(page, kPagePcp);
  page->order = 0;
  pcp.list.push(page);
  ++pcp.frees;
  if (pcp.list.count > kPcpHigh) {
    drain_list(zone, pcp, kPcpHigh - kPcpBatch);
  }
}

// Move frames from a per-CPU list back to the zone until `keep` remain.
void BuddyAllocator::drain_list(Zone& zone, PerCpuList& pcp, uint64_t keep) {
  SpinGuard guard(zone.lock);
  while (pcp.list.count > keep) {
    Page* page = pcp.list.pop();
    set_page_flags(page, 0);
    free_block(zone, page, 0);
  }
  ++zone.stats.pcp_drains;
}

// Empty this CPU's lists.
void BuddyAllocator::drain_this_cpu() {
  IrqGuard irq;
  const unsigned cpu = arch::this_cpu();
  for (Zone& zone : zones_) {
    if (!zone.pcp[cpu].list.empty()) {
      drain_list(zone, zone.pcp[cpu], 0);
    }
  }
}

// Empty every CPU's lists (others must be quiet).
void BuddyAllocator::drain_all() {
  for (Zone& zone : zones_) {
    for (PerCpuList& pcp : zone.pcp) {
      if (!pcp.list.empty()) {
        drain_list(zone, pcp, 0);
      }
    }
  }
}

// Allocate and return the physical address.
PhysAddr BuddyAllocator::alloc_phys(Gfp gfp, unsigned order) {
  Page* page = alloc_pages(gfp, order);
  return page == nullptr ? kNoPhys : page_to_phys(page);
}

// Free by physical address.
void BuddyAllocator::free_phys(PhysAddr pa, unsigned order) {
  free_pages(phys_to_page(pa), order);
}

// Copy the zone counters and add the per-CPU ones.
ZoneStats BuddyAllocator::zone_stats(ZoneId id) const {
  const Zone& zone = zones_[id];
  ZoneStats stats = zone.stats;
  for (const PerCpuList& pcp : zone.pcp) {
    stats.pcp_pages += pcp.list.count;
    stats.pcp_hits += pcp.hits;
    stats.alloc_count[0] += pcp.allocs;
    stats.free_count[0] += pcp.frees;
  }
  return stats;
}

// Free frames anywhere: buddy lists plus per-CPU lists.
uint64_t BuddyAllocator::free_pages_total() const {
  uint64_t total = 0;
  for (const Zone& zone : zones_) {
    total += zone.stats.free_pages;
    for (const PerCpuList& pcp : zone.pcp) {
      total += pcp.list.count;
    }
  }
  return total;
}

// Count the free blocks of one order.
uint64_t BuddyAllocator::free_blocks(ZoneId zone, unsigned order) const {
  return zones_[zone].free_area[order].count;
}

// Count the reported blocks of one order: they are the tail of the list.
uint64_t BuddyAllocator::reported_blocks(ZoneId zone, unsigned order) const {
  const PageList& list = zones_[zone].free_area[order];
  uint64_t n = 0;
  for (const Page* p = list.head.prev; p != &list.head && (page_flags(p) & kPageReported) != 0;
       p = p->prev) {
    ++n;
  }
  return n;
}

// Install the hook; the context is written first so a reader never sees the pair half set.
void BuddyAllocator::set_oom_hook(OomHook hook, void* context) {
  oom_context_ = context;
  __atomic_store_n(&oom_hook_, hook, __ATOMIC_RELEASE);
}

// Blocks of this order and above are reportable from now on.
void BuddyAllocator::set_report_order(unsigned order) {
  report_order_ = order;
}

// Swap the counter with zero.
uint64_t BuddyAllocator::take_report_notifications() {
  return __atomic_exchange_n(&report_notify_, 0, __ATOMIC_RELAXED);
}

// Isolate from NORMAL, then DMA32.
unsigned BuddyAllocator::isolate_unreported(IsolatedBlock* out, unsigned max) {
  unsigned n = 0;
  for (int id = kZoneNormal; id >= 0 && n < max; --id) {
    n += isolate_from_zone(zones_[id], out + n, max - n);
  }
  return n;
}

// Walk each reportable list from its head (unreported blocks first) down from kMaxOrder,
// stopping at the first reported block or when the zone would fall below its low watermark.
unsigned BuddyAllocator::isolate_from_zone(Zone& zone, IsolatedBlock* out, unsigned max) {
  SpinGuard guard(zone.lock);
  unsigned n = 0;
  for (unsigned o = kMaxOrder + 1; o-- > report_order_ && n < max;) {
    PageList& list = zone.free_area[o];
    while (n < max && !list.empty() && (page_flags(list.head.next) & kPageReported) == 0 &&
           zone.stats.free_pages >= zone.stats.watermark_low + (uint64_t{1} << o)) {
      Page* page = list.head.next;
      unlink_free(zone, page, o);
      zone.stats.isolated_pages += uint64_t{1} << o;
      out[n++] = IsolatedBlock{page, o};
    }
  }
  return n;
}

// Free each block back without notifying (it was just reported), marking it if asked.
void BuddyAllocator::putback_isolated(const IsolatedBlock* blocks, unsigned count, bool reported) {
  for (unsigned i = 0; i < count; ++i) {
    Zone& zone = zone_of(blocks[i].page);
    SpinGuard guard(zone.lock);
    zone.stats.isolated_pages -= uint64_t{1} << blocks[i].order;
    free_block(zone, blocks[i].page, blocks[i].order, /*notify=*/false, reported);
  }
}

}  // namespace hvmm::guest::mm
