// The SLUB-like object cache (see slab.h and guest/mm/DESIGN.md).
#include "hvmm/guest/mm/slab.h"

namespace hvmm::guest::mm {
namespace {

constexpr uint8_t kPoisonFree = 0x6b;   // object bytes of a free debug object
constexpr uint8_t kRedInactive = 0xbb;  // red zones of a free debug object
constexpr uint8_t kRedActive = 0xcc;    // red zones of an allocated debug object
constexpr unsigned kTargetObjects = 8;  // smallest slab order holding this many wins
constexpr unsigned kMaxPreferredOrder = 3;

SlabReportFn g_report = nullptr;

// Round `value` up to a multiple of `align` (a power of two).
uint32_t round_up(uint32_t value, uint32_t align) {
  return (value + align - 1) & ~(align - 1);
}

// Report whether [p, p + len) holds only `byte`, eight bytes per step (ring-0 code is
// emulated per instruction in the guest, so a byte loop would cost eight times more).
bool all_bytes(const uint8_t* p, uint32_t len, uint8_t byte) {
  const uint64_t pattern = uint64_t{byte} * 0x0101010101010101ull;
  uint32_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t word;
    __builtin_memcpy(&word, p + i, sizeof(word));
    if (word != pattern) {
      return false;
    }
  }
  for (; i < len; ++i) {
    if (p[i] != byte) {
      return false;
    }
  }
  return true;
}

}  // namespace

// Install the debug report hook.
void KmemCache::set_report_hook(SlabReportFn fn) {
  g_report = fn;
}

// Compute the slot layout and the slab order for this object size.
bool KmemCache::init(BuddyAllocator* buddy, const char* name, uint32_t size, uint32_t align,
                     uint32_t flags) {
  if (size == 0 || (align & (align - 1)) != 0) {
    return false;
  }
  align = align < 8 ? 8 : align;
  buddy_ = buddy;
  name_ = name;
  object_size_ = size;
  flags_ = flags;
  if ((flags & kSlabDebug) != 0) {
    object_offset_ = round_up(8, align);
    free_offset_ = object_offset_ + round_up(size, 8) + 8;
    slot_size_ = round_up(free_offset_ + 8, align);
  } else {
    object_offset_ = 0;
    free_offset_ = 0;
    slot_size_ = round_up(size < 8 ? 8 : size, align);
  }
  unsigned order = 0;
  while (order < kMaxOrder && ((kPageSize << order) / slot_size_ < kTargetObjects ||
                               (kPageSize << order) / slot_size_ == 0)) {
    if (order >= kMaxPreferredOrder && (kPageSize << order) / slot_size_ >= 1) {
      break;
    }
    ++order;
  }
  const uint64_t objects = (kPageSize << order) / slot_size_;
  if (objects == 0 || objects > 0xffff) {
    return false;
  }
  order_ = static_cast<uint8_t>(order);
  objects_ = static_cast<uint16_t>(objects);
  partial_.init();
  return true;
}

// Map an object to the head page of its slab; anything else is a caller bug.
Page* KmemCache::slab_of(const void* object) const {
  Page* page = buddy_->virt_to_page(object);
  if ((page_flags(page) & kPageTail) != 0) {
    page = page->head;
  }
  if ((page_flags(page) & kPageSlab) == 0) {
    arch::mm_panic("slab: freeing a pointer that is not a slab object");
  }
  return page;
}

// Slot/object conversions (they differ only in debug caches).
void* KmemCache::object_of_slot(void* slot) const {
  return static_cast<uint8_t*>(slot) + object_offset_;
}
void* KmemCache::slot_of_object(const void* object) const {
  return const_cast<uint8_t*>(static_cast<const uint8_t*>(object)) - object_offset_;
}

// Read and write the next-free pointer kept inside a free object's slot.
void* KmemCache::get_free(void* object) const {
  void* next;
  __builtin_memcpy(&next, static_cast<uint8_t*>(slot_of_object(object)) + free_offset_,
                   sizeof(next));
  return next;
}
void KmemCache::set_free(void* object, void* next) const {
  __builtin_memcpy(static_cast<uint8_t*>(slot_of_object(object)) + free_offset_, &next,
                   sizeof(next));
}

// Fast path: pop this CPU's freelist with interrupts off; refill in alloc_slow otherwise.
void* KmemCache::alloc(Gfp gfp) {
  void* object;
  {
    IrqGuard irq;
    CpuSlab& cpu = cpu_[arch::this_cpu()];
    object = cpu.freelist;
    if (object != nullptr) {
      cpu.freelist = get_free(object);
      ++cpu.fast_allocs;
    } else {
      object = alloc_slow(cpu, gfp);
      if (object == nullptr) {
        return nullptr;
      }
    }
    ++cpu.allocs;
    if ((flags_ & kSlabDebug) != 0) {
      debug_on_alloc(slot_of_object(object));
    }
  }
  if ((gfp & kGfpZero) != 0) {
    __builtin_memset(object, 0, object_size_);
  }
  return object;
}

// Make `page` this CPU's frozen slab: the CPU takes its freelist and owns its untouched
// objects, so it counts every object as in use (cache lock held).
void KmemCache::freeze(CpuSlab& cpu, Page* page) {
  page->slab.frozen = 1;
  cpu.freelist = page->slab.freelist;
  page->slab.freelist = nullptr;
  page->slab.inuse = objects_;
  cpu.page = page;
}

// Move up to kCarveBatch untouched objects of this CPU's slab onto its freelist (no lock:
// the untouched objects of a frozen slab belong to its CPU). Return false if none are left.
bool KmemCache::carve(CpuSlab& cpu) {
  Page* page = cpu.page;
  const unsigned first = page->slab.carved;
  unsigned last = first + kCarveBatch;
  last = last > objects_ ? objects_ : last;
  if (first == last) {
    return false;
  }
  auto* base = static_cast<uint8_t*>(buddy_->page_address(page));
  void* next = cpu.freelist;
  for (unsigned i = last; i-- > first;) {
    void* object = object_of_slot(base + uint64_t{i} * slot_size_);
    set_free(object, next);
    next = object;
  }
  cpu.freelist = next;
  page->slab.carved = static_cast<uint16_t>(last);
  return true;
}

// Refill under the lock: remote frees on the current slab, else a partial slab (the full
// current slab is dropped: it is on no list until an object comes back).
void KmemCache::refill_locked(CpuSlab& cpu) {
  if (cpu.page != nullptr && cpu.page->slab.freelist != nullptr) {
    cpu.freelist = cpu.page->slab.freelist;
    cpu.page->slab.freelist = nullptr;
    cpu.page->slab.inuse = objects_;
    return;
  }
  if (cpu.page != nullptr) {
    cpu.page->slab.frozen = 0;
    cpu.page = nullptr;
  }
  if (!partial_.empty()) {
    Page* page = partial_.head.next;
    remove_partial(page);
    freeze(cpu, page);
  }
}

// Refill the CPU freelist: untouched objects of the current slab, remote frees, a partial
// slab, then a new slab from the buddy allocator. Interrupts are off.
void* KmemCache::alloc_slow(CpuSlab& cpu, Gfp gfp) {
  if (cpu.page == nullptr || !carve(cpu)) {
    {
      SpinGuard guard(lock_);
      refill_locked(cpu);
    }
    if (cpu.freelist == nullptr && cpu.page != nullptr) {
      (void)carve(cpu);  // a partial slab whose free objects are all untouched
    }
    if (cpu.freelist == nullptr) {
      Page* page = new_slab(gfp);
      SpinGuard guard(lock_);
      if (page == nullptr) {
        ++failures_;
        return nullptr;
      }
      freeze(cpu, page);
      (void)carve(cpu);
    }
  }
  void* object = cpu.freelist;
  cpu.freelist = get_free(object);
  return object;
}

// Allocate 2^order frames and mark them as a slab; objects are carved later, on demand.
Page* KmemCache::new_slab(Gfp gfp) {
  Page* page = buddy_->alloc_pages(static_cast<Gfp>(gfp & ~kGfpZero), order_);
  if (page == nullptr) {
    return nullptr;
  }
  set_page_flags(page, static_cast<uint16_t>(kPageSlab | (order_ > 0 ? kPageHead : 0)));
  page->order = order_;
  for (unsigned i = 1; i < (1u << order_); ++i) {
    set_page_flags(&page[i], kPageTail);
    page[i].head = page;
  }
  if ((flags_ & kSlabDebug) != 0) {
    auto* base = static_cast<uint8_t*>(buddy_->page_address(page));
    __builtin_memset(base, kRedInactive, uint64_t{slot_size_} * objects_);
    for (unsigned i = 0; i < objects_; ++i) {
      __builtin_memset(base + uint64_t{i} * slot_size_ + object_offset_, kPoisonFree, object_size_);
    }
  }
  page->slab = SlabState{nullptr, this, 0, objects_, 0, 0, 0};
  SpinGuard guard(lock_);
  ++slabs_;
  ++slabs_allocated_;
  return page;
}

// Return an empty slab's frames to the buddy allocator (cache lock held).
void KmemCache::discard_slab(Page* page) {
  for (unsigned i = 1; i < (1u << order_); ++i) {
    set_page_flags(&page[i], 0);
    page[i].head = nullptr;
  }
  set_page_flags(page, 0);
  page->slab = SlabState{};
  buddy_->free_pages(page, order_);
  --slabs_;
  ++slabs_freed_;
}

// Partial-list membership, tracked in the slab so it is never added twice.
void KmemCache::add_partial(Page* page) {
  if (page->slab.on_partial == 0) {
    partial_.push(page);
    page->slab.on_partial = 1;
  }
}
void KmemCache::remove_partial(Page* page) {
  if (page->slab.on_partial != 0) {
    partial_.remove(page);
    page->slab.on_partial = 0;
  }
}

// Look up the object's slab and free it there.
void KmemCache::free(void* object) {
  if (object == nullptr) {
    return;
  }
  free_in_slab(slab_of(object), object);
}

// Push on this CPU's freelist when the object is in its current slab, else the slow path.
void KmemCache::free_in_slab(Page* page, void* object) {
  if (page->slab.cache != this) {
    arch::mm_panic("slab: object freed to the wrong cache");
  }
  IrqGuard irq;
  if ((flags_ & kSlabDebug) != 0 && !debug_on_free(slot_of_object(object))) {
    return;
  }
  CpuSlab& cpu = cpu_[arch::this_cpu()];
  ++cpu.frees;
  if (page == cpu.page) {
    set_free(object, cpu.freelist);
    cpu.freelist = object;
    return;
  }
  free_slow(page, object);
}

// Put the object on its slab's own freelist and fix the slab's list membership: a slab
// that was full joins the partial list; an empty one goes back beyond kMinPartial.
void KmemCache::free_slow(Page* page, void* object) {
  SpinGuard guard(lock_);
  ++slow_frees_;
  set_free(object, page->slab.freelist);
  page->slab.freelist = object;
  --page->slab.inuse;
  if (page->slab.frozen != 0) {
    return;
  }
  if (page->slab.inuse == 0 && partial_.count >= kMinPartial) {
    remove_partial(page);
    discard_slab(page);
    return;
  }
  add_partial(page);
}

// Give a CPU's slab back to the lists (cache lock held; that CPU must be quiet): its
// freelist returns to the slab, and its untouched objects stop counting as in use.
void KmemCache::flush_cpu(CpuSlab& cpu) {
  Page* page = cpu.page;
  if (page == nullptr) {
    return;
  }
  for (void* object = cpu.freelist; object != nullptr;) {
    void* next = get_free(object);
    set_free(object, page->slab.freelist);
    page->slab.freelist = object;
    --page->slab.inuse;
    object = next;
  }
  page->slab.inuse = static_cast<uint16_t>(page->slab.inuse - (objects_ - page->slab.carved));
  cpu.freelist = nullptr;
  cpu.page = nullptr;
  page->slab.frozen = 0;
  if (page->slab.inuse == 0) {
    discard_slab(page);
  } else if (page->slab.inuse < objects_) {
    add_partial(page);
  }
}

// Flush this CPU's slab and free every empty partial slab.
void KmemCache::shrink() {
  IrqGuard irq;
  SpinGuard guard(lock_);
  flush_cpu(cpu_[arch::this_cpu()]);
  for (Page* page = partial_.head.next; page != &partial_.head;) {
    Page* next = page->next;
    if (page->slab.inuse == 0) {
      remove_partial(page);
      discard_slab(page);
    }
    page = next;
  }
}

// Flush every CPU and free all slabs; report leaks.
bool KmemCache::destroy() {
  {
    IrqGuard irq;
    SpinGuard guard(lock_);
    for (CpuSlab& cpu : cpu_) {
      flush_cpu(cpu);
    }
  }
  shrink();
  return slabs_ == 0;
}

// Sum the per-CPU counters into a snapshot.
KmemCacheStats KmemCache::stats() const {
  KmemCacheStats stats;
  for (const CpuSlab& cpu : cpu_) {
    stats.allocs += cpu.allocs;
    stats.frees += cpu.frees;
    stats.fast_allocs += cpu.fast_allocs;
  }
  stats.slabs = slabs_;
  stats.slabs_allocated = slabs_allocated_;
  stats.slabs_freed = slabs_freed_;
  stats.partial = partial_.count;
  stats.debug_errors = debug_errors_;
  stats.failures = failures_;
  return stats;
}

// Count a debug finding and tell the hook.
void KmemCache::report(const char* problem, const void* object) {
  __atomic_add_fetch(&debug_errors_, 1, __ATOMIC_RELAXED);
  if (g_report != nullptr) {
    g_report(name_, problem, object);
  }
}

// Check that a free object was not written while free, then arm its red zones.
void KmemCache::debug_on_alloc(void* slot) {
  auto* s = static_cast<uint8_t*>(slot);
  void* object = object_of_slot(slot);
  if (!all_bytes(s + object_offset_, object_size_, kPoisonFree)) {
    report("poison overwritten: written after free", object);
  }
  __builtin_memset(s, kRedActive, object_offset_);
  __builtin_memset(s + object_offset_ + object_size_, kRedActive,
                   free_offset_ - object_offset_ - object_size_);
}

// Check both red zones of an allocated object; on success poison it and disarm the zones.
bool KmemCache::debug_on_free(void* slot) {
  auto* s = static_cast<uint8_t*>(slot);
  void* object = object_of_slot(slot);
  const uint32_t right = free_offset_ - object_offset_ - object_size_;
  if (all_bytes(s, object_offset_, kRedInactive)) {
    report("double free", object);
    return false;
  }
  if (!all_bytes(s, object_offset_, kRedActive)) {
    report("red zone before the object overwritten", object);
    return false;
  }
  if (!all_bytes(s + object_offset_ + object_size_, right, kRedActive)) {
    report("red zone after the object overwritten", object);
    return false;
  }
  __builtin_memset(s, kRedInactive, object_offset_);
  __builtin_memset(s + object_offset_, kPoisonFree, object_size_);
  __builtin_memset(s + object_offset_ + object_size_, kRedInactive, right);
  return true;
}

}  // namespace hvmm::guest::mm
