// kmalloc/kfree over size-class caches; requests above 8 KiB take buddy blocks directly.
#include "hvmm/guest/mm/slab.h"

namespace hvmm::guest::mm {
namespace {

constexpr uint32_t kClassSizes[kKmallocClasses] = {8,   16,  32,   64,   96,   128, 192,
                                                   256, 512, 1024, 2048, 4096, 8192};
constexpr const char* kClassNames[kKmallocClasses] = {
    "kmalloc-8",   "kmalloc-16",  "kmalloc-32",  "kmalloc-64",  "kmalloc-96",
    "kmalloc-128", "kmalloc-192", "kmalloc-256", "kmalloc-512", "kmalloc-1k",
    "kmalloc-2k",  "kmalloc-4k",  "kmalloc-8k"};

// Class index for sizes up to 192, by (size + 7) / 8 (the small-size lookup table of SLUB).
constexpr uint8_t kSmallIndex[25] = {0, 0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4,
                                     5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6};

Kmalloc* g_default = nullptr;

// Return the class index serving `size` (1..8192).
unsigned class_index(size_t size) {
  if (size <= 192) {
    return kSmallIndex[(size + 7) / 8];
  }
  // 193..256 -> 7, 257..512 -> 8, ... 4097..8192 -> 12.
  const unsigned log2_ceil = 64 - static_cast<unsigned>(__builtin_clzll(size - 1));
  return log2_ceil - 1;
}

// Return the smallest order whose block holds `size` bytes.
unsigned order_for(size_t size) {
  unsigned order = 0;
  while ((kPageSize << order) < size) {
    ++order;
  }
  return order;
}

}  // namespace

// Create the caches; power-of-two classes are naturally aligned unless debugging.
bool Kmalloc::init(BuddyAllocator* buddy, bool debug) {
  buddy_ = buddy;
  for (unsigned i = 0; i < kKmallocClasses; ++i) {
    const uint32_t size = kClassSizes[i];
    const bool pow2 = (size & (size - 1)) == 0;
    const uint32_t align = debug || !pow2 ? 8 : size;
    if (!caches_[i].init(buddy, kClassNames[i], size, align, debug ? kSlabDebug : kSlabNone)) {
      return false;
    }
  }
  return true;
}

// Return the cache for `size`, or nullptr when it is served by the buddy allocator.
KmemCache* Kmalloc::cache_for(size_t size) {
  if (size > kKmallocMaxCached) {
    return nullptr;
  }
  return &caches_[class_index(size == 0 ? 1 : size)];
}

// Route to a size class, or take a compound buddy block for large sizes.
void* Kmalloc::alloc(size_t size, Gfp gfp) {
  KmemCache* cache = cache_for(size);
  if (cache != nullptr) {
    return cache->alloc(gfp);
  }
  const unsigned order = order_for(size);
  if (order > kMaxOrder) {
    return nullptr;
  }
  Page* page = buddy_->alloc_pages(gfp, order);
  if (page == nullptr) {
    return nullptr;
  }
  set_page_flags(page, static_cast<uint16_t>(kPageLargeKmalloc | kPageHead));
  page->order = static_cast<uint8_t>(order);
  return buddy_->page_address(page);
}

// Find the owner through the Page: a slab cache, or a large block.
void Kmalloc::free(const void* object) {
  if (object == nullptr) {
    return;
  }
  Page* page = buddy_->virt_to_page(object);
  if ((page_flags(page) & kPageTail) != 0) {
    page = page->head;
  }
  if ((page_flags(page) & kPageSlab) != 0) {
    page->slab.cache->free_in_slab(page, const_cast<void*>(object));
    return;
  }
  if ((page_flags(page) & kPageLargeKmalloc) == 0) {
    arch::mm_panic("kfree: pointer not from kmalloc");
  }
  const unsigned order = page->order;
  set_page_flags(page, 0);
  page->order = 0;
  buddy_->free_pages(page, order);
}

// The object size of the owning cache, or the whole block.
size_t Kmalloc::usable_size(const void* object) const {
  Page* page = buddy_->virt_to_page(object);
  if ((page_flags(page) & kPageTail) != 0) {
    page = page->head;
  }
  if ((page_flags(page) & kPageSlab) != 0) {
    return page->slab.cache->object_size();
  }
  return kPageSize << page->order;
}

// The global instance.
void kmalloc_set_default(Kmalloc* instance) {
  g_default = instance;
}
void* kmalloc(size_t size, Gfp gfp) {
  return g_default->alloc(size, gfp);
}
void kfree(const void* object) {
  g_default->free(object);
}

}  // namespace hvmm::guest::mm
