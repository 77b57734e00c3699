// BuddyAllocator: the physical page allocator (orders 0..10, zones, per-CPU order-0 lists).
//
// Free blocks of 2^order frames sit on per-zone, per-order lists; an allocation splits a
// larger block, a free merges with its buddy (pfn ^ (1 << order)) as long as the buddy is
// a free block of the same order in the same zone. Order-0 traffic goes through per-CPU
// lists refilled and drained in batches, so the zone lock is taken once per batch.
// Watermarks (min/low/high) are derived from each zone's size; GFP_KERNEL stops at min,
// GFP_ATOMIC may dip to min/2 (it cannot wait for reclaim). Counters are kept per zone.
//
// Free page reporting (as Linux's mm/page_reporting.c): free blocks of a high order are
// isolated in batches, reported by a driver and put back marked kPageReported, at the tail of
// their list, so they are neither reported again nor preferred by allocations until they are
// allocated (which clears the mark). Each list therefore holds unreported blocks first and
// reported ones after them. An OOM hook (the balloon's deflate-on-oom) may give frames back
// when an allocation fails at its watermark.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hvmm/guest/mm/arch_hooks.h"
#include "hvmm/guest/mm/memblock.h"
#include "hvmm/guest/mm/page.h"
#include "hvmm/guest/mm/spinlock.h"

namespace hvmm::guest::mm {

// The highest order: blocks of 2^10 frames (4 MiB).
inline constexpr unsigned kMaxOrder = 10;
inline constexpr unsigned kNrOrders = kMaxOrder + 1;

// The GFP subset: how an allocation may behave. Combine with |.
enum Gfp : uint32_t {
  kGfpKernel = 0,       // may use memory down to the min watermark
  kGfpAtomic = 1 << 0,  // interrupt context: may dip below min (to min/2)
  kGfpZero = 1 << 1,    // return zeroed memory
  kGfpDma32 = 1 << 2,   // only frames below 4 GiB
  kGfpNoOom = 1 << 3,   // fail without calling the OOM hook (the balloon's own allocations)
};
inline constexpr Gfp operator|(Gfp a, Gfp b) {
  return static_cast<Gfp>(static_cast<uint32_t>(a) | static_cast<uint32_t>(b));
}

// Zones, by physical address: DMA32 below 4 GiB, NORMAL above.
enum ZoneId : uint8_t { kZoneDma32 = 0, kZoneNormal = 1, kNrZones = 2 };

// A doubly linked list of Pages through Page::next/prev (circular, with a sentinel head).
struct PageList {
  Page head = {};
  uint64_t count = 0;
  void init() {
    head.next = head.prev = &head;
    count = 0;
  }
  bool empty() const { return head.next == &head; }
  void push(Page* page);
  void push_tail(Page* page);
  Page* pop();
  void remove(Page* page);
};

// Counters of one zone (monotonic except the *_pages gauges).
struct ZoneStats {
  uint64_t managed_pages = 0;  // frames given to this zone
  uint64_t free_pages = 0;     // frames on buddy lists (not counting per-CPU lists)
  uint64_t pcp_pages = 0;      // frames on per-CPU lists (sum over CPUs)
  uint64_t watermark_min = 0;
  uint64_t watermark_low = 0;
  uint64_t watermark_high = 0;
  uint64_t alloc_count[kNrOrders] = {};  // successful allocations per order
  uint64_t free_count[kNrOrders] = {};
  uint64_t splits = 0;           // blocks split to serve a smaller order
  uint64_t merges = 0;           // buddy merges on free
  uint64_t pcp_hits = 0;         // order-0 allocations served from a per-CPU list
  uint64_t pcp_refills = 0;      // batches moved buddy -> per-CPU list
  uint64_t pcp_drains = 0;       // batches moved per-CPU list -> buddy
  uint64_t below_low = 0;        // allocations that found the zone below low (kswapd would wake)
  uint64_t failures = 0;         // allocations refused by this zone
  uint64_t pages_zeroed = 0;     // frames cleared for kGfpZero
  uint64_t zeroing_skipped = 0;  // kGfpZero frames known to be zero already (never used)
  uint64_t reported_pages = 0;   // frames in free blocks marked kPageReported
  uint64_t isolated_pages = 0;   // frames taken off the lists for reporting, not yet put back
};

// Called when an allocation fails at its watermark (no zone lock held, interrupts as the
// allocating caller had them): free frames if possible and return how many; a non-zero answer
// makes the allocator try once more.
using OomHook = uint64_t (*)(void* context, uint64_t pages_wanted);

// A free block taken off the lists for free page reporting.
struct IsolatedBlock {
  Page* page = nullptr;
  unsigned order = 0;
};

// The page allocator. Constant-initialised (usable as a global); call init() once.
class BuddyAllocator {
 public:
  static constexpr unsigned kPcpBatch = 31;  // frames moved per refill/drain
  static constexpr unsigned kPcpHigh = 93;   // drain when a per-CPU list exceeds this

  // Build from memblock: allocate and zero the Page array from memblock (one memset), then
  // hand every free range to the zones as maximal aligned blocks. Memblock must not be used
  // for allocation afterwards. Return false if the Page array does not fit.
  // `memory_is_zero`: every byte of RAM not reserved in memblock is still zero (fresh VMM
  // memory). Then the Page array memset is skipped and kGfpZero skips frames that were
  // never handed out (Page::dirty == 0), which matters where stores are expensive.
  bool init(Memblock& memblock, bool memory_is_zero = false);

  // Allocate 2^order contiguous frames. Return nullptr if none (watermarks included).
  Page* alloc_pages(Gfp gfp, unsigned order);
  // Free 2^order frames starting at `page` (as returned by alloc_pages with that order).
  void free_pages(Page* page, unsigned order);
  // The same as alloc_pages/free_pages with physical addresses (kNoPhys on failure).
  PhysAddr alloc_phys(Gfp gfp, unsigned order);
  void free_phys(PhysAddr pa, unsigned order);

  // Return this CPU's order-0 frames to the buddy lists (CPU going idle, or tests).
  void drain_this_cpu();
  // Return every CPU's per-CPU frames; callers ensure no other CPU allocates meanwhile.
  void drain_all();

  // Conversions between frames, Pages and addresses. pfn must be within [start, end).
  Page* pfn_to_page(uint64_t pfn) const { return &pages_[pfn - start_pfn_]; }
  uint64_t page_to_pfn(const Page* page) const {
    return start_pfn_ + static_cast<uint64_t>(page - pages_);
  }
  PhysAddr page_to_phys(const Page* page) const {
    return PhysAddr(page_to_pfn(page) << kPageShift);
  }
  Page* phys_to_page(PhysAddr pa) const { return pfn_to_page(pa.page_number()); }
  void* page_address(const Page* page) const { return arch::phys_to_virt(page_to_phys(page)); }
  Page* virt_to_page(const void* va) const { return phys_to_page(arch::virt_to_phys(va)); }
  bool pfn_valid(uint64_t pfn) const { return pfn >= start_pfn_ && pfn < end_pfn_; }
  uint64_t start_pfn() const { return start_pfn_; }
  uint64_t end_pfn() const { return end_pfn_; }

  // Return a snapshot of one zone's counters.
  ZoneStats zone_stats(ZoneId zone) const;
  // Return the free frames of all zones, buddy plus per-CPU lists.
  uint64_t free_pages_total() const;
  // Return how many free blocks of `order` zone `zone` holds (for tests and /proc-like dumps).
  uint64_t free_blocks(ZoneId zone, unsigned order) const;
  // Return how many of them are marked kPageReported.
  uint64_t reported_blocks(ZoneId zone, unsigned order) const;

  // Register the OOM hook (one; nullptr removes it).
  void set_oom_hook(OomHook hook, void* context);
  // Failed allocations that called the OOM hook, and the frames it gave back.
  uint64_t oom_hook_calls() const { return __atomic_load_n(&oom_calls_, __ATOMIC_RELAXED); }
  uint64_t oom_hook_pages() const { return __atomic_load_n(&oom_pages_, __ATOMIC_RELAXED); }

  // Free page reporting. Blocks of order >= `order` (default kMaxOrder + 1: none) count as
  // reportable; freeing one adds its frames to a notification counter.
  void set_report_order(unsigned order);
  unsigned report_order() const { return report_order_; }
  // Return and clear the frames freed in reportable blocks since the last call (the driver's
  // trigger; what was free before set_report_order() is not counted).
  uint64_t take_report_notifications();
  // Take up to `max` unreported free blocks of order >= report_order() off the lists, highest
  // order first, while each zone keeps at least its low watermark; return how many. They are
  // not allocatable until putback_reported().
  unsigned isolate_unreported(IsolatedBlock* out, unsigned max);
  // Return isolated blocks to the lists: `reported` marks those that did not merge on the way
  // back (Linux does the same; a merged block is reported again later).
  void putback_isolated(const IsolatedBlock* blocks, unsigned count, bool reported);

 private:
  struct PerCpuList {
    PageList list;
    uint64_t hits = 0;
    uint64_t allocs = 0;
    uint64_t frees = 0;
  };
  struct Zone {
    SpinLock lock;
    PageList free_area[kNrOrders];
    ZoneStats stats;
    uint64_t start_pfn = 0;
    uint64_t end_pfn = 0;
    PerCpuList pcp[kMaxCpus];
  };

  Page* alloc_from_zone(Zone& zone, Gfp gfp, unsigned order);
  Page* alloc_pcp(Zone& zone, Gfp gfp);
  Page* remove_block(Zone& zone, unsigned order);
  void unlink_free(Zone& zone, Page* page, unsigned order);
  unsigned free_block(Zone& zone, Page* page, unsigned order, bool notify = true,
                      bool reported = false);
  Page* alloc_zones(Gfp gfp, unsigned order);
  unsigned isolate_from_zone(Zone& zone, IsolatedBlock* out, unsigned max);
  void free_pcp(Zone& zone, Page* page);
  bool watermark_ok(Zone& zone, Gfp gfp, unsigned order);
  void release_range(uint64_t start_pfn, uint64_t end_pfn);
  void setup_watermarks(Zone& zone);
  void drain_list(Zone& zone, PerCpuList& pcp, uint64_t keep);
  Zone& zone_of(const Page* page) { return zones_[page->zone]; }
  void zero_block(Page* page, unsigned order);

  Page* pages_ = nullptr;
  uint64_t start_pfn_ = 0;
  uint64_t end_pfn_ = 0;
  bool memory_is_zero_ = false;
  unsigned report_order_ = kNrOrders;
  uint64_t report_notify_ = 0;
  uint64_t oom_calls_ = 0;
  uint64_t oom_pages_ = 0;
  OomHook oom_hook_ = nullptr;
  void* oom_context_ = nullptr;
  Zone zones_[kNrZones];
};

}  // namespace hvmm::guest::mm
