// struct Page: the per-frame metadata shared by the buddy allocator, slab and page tables.
//
// One Page per 4 KiB frame, in one array (a "flat memmap") allocated from memblock. All
// fields are zero in the initial state, so the array is initialised by one bulk memset
// (a single rep stosb in the kernel; skipped entirely when the kernel knows RAM is still
// zero) and nothing else: a zero Page means "not free, not slab, refcount 0, never handed
// out", which is exactly right for reserved frames. Only the head page of
// each free block is written when the buddy allocator is filled. See guest/mm/DESIGN.md.
#pragma once

#include <cstdint>

namespace hvmm::guest::mm {

class KmemCache;

// Page flags (Page::flags).
enum PageFlag : uint16_t {
  kPageBuddy = 1 << 0,         // head of a free block in a buddy free list (order in Page::order)
  kPagePcp = 1 << 1,           // order-0 page on a per-CPU list
  kPageSlab = 1 << 2,          // head page of a slab (Page::slab valid)
  kPageHead = 1 << 3,          // head of a compound allocation (order in Page::order)
  kPageTail = 1 << 4,          // tail of a compound allocation (Page::head valid)
  kPageTable = 1 << 5,         // a page-table page
  kPageLargeKmalloc = 1 << 6,  // head of a kmalloc allocation above 8 KiB
  kPageVmalloc = 1 << 7,       // backs a vmalloc area
  kPageReported = 1 << 8,      // free block (with kPageBuddy) reported to the host: not again
                               // until it is allocated (free page reporting)
  kPageBalloon = 1 << 9,       // head of a block held by the balloon driver (order in order)
};

// Slab state kept in the head page of a slab.
struct SlabState {
  void* freelist;      // objects freed while not on a CPU freelist
  KmemCache* cache;    // owner
  uint16_t inuse;      // objects neither on `freelist` nor uncarved (frozen: see slab.cc)
  uint16_t objects;    // objects in the slab
  uint16_t carved;     // objects [0, carved) were ever handed out; the rest are untouched
  uint8_t frozen;      // 1 while this slab is some CPU's current slab
  uint8_t on_partial;  // 1 while on the cache's partial list
};

// Per-frame metadata (48 bytes). Zero is the initial, valid state.
struct Page {
  uint16_t flags;
  uint8_t order;      // block order: free head (kPageBuddy) or compound head (kPageHead)
  uint8_t zone;       // ZoneId, set for every frame the buddy manages
  uint16_t refcount;  // users of a frame mapped into address spaces
  uint8_t dirty;      // 1 once the frame was handed out: it may hold non-zero bytes
  uint8_t unused;
  Page* next;  // list link: buddy/pcp free lists, slab partial list, gathers
  Page* prev;
  union {
    SlabState slab;         // kPageSlab
    Page* head;             // kPageTail
    uint64_t private_data;  // free for the owner (page tables: count of present entries)
  };
};
static_assert(sizeof(Page) == 48, "Page layout changed: update DESIGN.md");

// Read and write Page::flags. A buddy merge inspects the flags of a neighbouring frame that
// another CPU may own and be relabelling (slab, page table) without the zone lock; the
// owner never sets kPageBuddy, so the answer is right either way, but both sides must be
// atomic accesses for that to be defined. Relaxed 16-bit loads and stores are plain movs.
inline uint16_t page_flags(const Page* page) {
  return __atomic_load_n(&page->flags, __ATOMIC_RELAXED);
}
inline void set_page_flags(Page* page, uint16_t flags) {
  __atomic_store_n(&page->flags, flags, __ATOMIC_RELAXED);
}

}  // namespace hvmm::guest::mm
