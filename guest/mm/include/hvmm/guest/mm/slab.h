// SLUB-like object allocator: kmem_cache per object size, per-CPU freelists, partial slabs.
//
// A slab is a block of 2^order frames cut into equal objects; a free object stores the
// next-free pointer inside itself. A new slab is not threaded up front: its objects are
// carved onto the CPU freelist kCarveBatch at a time as they are first needed (each
// store costs microseconds in the emulated guest ring 0). Each CPU owns one "frozen" slab whose
// free objects form its lock-free (interrupts-off) freelist: the fast paths are a pop and a push.
// Objects freed on a slab that is not this CPU's current one go to that slab's own freelist under
// the cache lock; slabs with some free objects sit on the partial list; empty slabs beyond
// kMinPartial go back to the buddy allocator.
//
// Debug caches (kSlabDebug) surround each object with red zones and poison freed objects:
// a red zone overwritten, a poisoned object written after free, or a double free is
// counted in KmemCacheStats::debug_errors and reported through the report hook; the
// object involved is then leaked rather than reused.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hvmm/guest/mm/buddy.h"
#include "hvmm/guest/mm/spinlock.h"

namespace hvmm::guest::mm {

// Cache creation flags.
enum SlabFlags : uint32_t {
  kSlabNone = 0,
  kSlabDebug = 1 << 0,  // red zones + poison + double-free detection
};

// Counters of one cache.
struct KmemCacheStats {
  uint64_t allocs = 0;  // successful allocations (sum over CPUs)
  uint64_t frees = 0;
  uint64_t fast_allocs = 0;  // served from the CPU freelist
  uint64_t slabs = 0;        // slabs currently owned
  uint64_t slabs_allocated = 0;
  uint64_t slabs_freed = 0;
  uint64_t partial = 0;       // slabs currently on the partial list
  uint64_t debug_errors = 0;  // red-zone, poison or double-free findings
  uint64_t failures = 0;
};

// A function called with (cache name, problem, object) when debugging finds corruption.
using SlabReportFn = void (*)(const char* cache, const char* problem, const void* object);

// A cache of equal-sized objects. Constant-initialised; call init() before use.
class KmemCache {
 public:
  static constexpr unsigned kMinPartial = 2;   // empty slabs kept on the partial list
  static constexpr unsigned kCarveBatch = 16;  // untouched objects moved per refill

  // Set up a cache of `size`-byte objects aligned to `align` (power of two, 8 minimum).
  // Return false if the size is 0 or larger than 2^kMaxOrder pages allow.
  bool init(BuddyAllocator* buddy, const char* name, uint32_t size, uint32_t align, uint32_t flags);
  // Allocate one object (zeroed with kGfpZero). Return nullptr when memory runs out.
  void* alloc(Gfp gfp);
  // Free an object of this cache.
  void free(void* object);
  // Free an object whose slab head page the caller already looked up (kfree does).
  void free_in_slab(Page* slab, void* object);
  // Give this CPU's slab back and free empty slabs (memory pressure, tests).
  void shrink();
  // Free every slab. All objects must have been freed; return false (and leak) otherwise.
  bool destroy();

  KmemCacheStats stats() const;
  const char* name() const { return name_; }
  uint32_t object_size() const { return object_size_; }
  uint32_t slot_size() const { return slot_size_; }
  unsigned slab_order() const { return order_; }
  uint32_t flags() const { return flags_; }

  // Set the hook called on debug findings (nullptr: count only).
  static void set_report_hook(SlabReportFn fn);

 private:
  struct CpuSlab {
    void* freelist = nullptr;  // free objects of `page`, owned by this CPU
    Page* page = nullptr;      // the frozen current slab, or nullptr
    uint64_t allocs = 0;
    uint64_t frees = 0;
    uint64_t fast_allocs = 0;
  };

  void* alloc_slow(CpuSlab& cpu, Gfp gfp);
  bool carve(CpuSlab& cpu);
  void refill_locked(CpuSlab& cpu);
  void freeze(CpuSlab& cpu, Page* page);
  Page* new_slab(Gfp gfp);
  void discard_slab(Page* page);
  void free_slow(Page* page, void* object);
  void unfreeze(CpuSlab& cpu);
  void add_partial(Page* page);
  void remove_partial(Page* page);
  void flush_cpu(CpuSlab& cpu);
  Page* slab_of(const void* object) const;
  void* get_free(void* object) const;
  void set_free(void* object, void* next) const;
  void* object_of_slot(void* slot) const;
  void* slot_of_object(const void* object) const;
  void debug_on_alloc(void* slot);
  bool debug_on_free(void* slot);
  void report(const char* problem, const void* object);

  BuddyAllocator* buddy_ = nullptr;
  const char* name_ = "";
  uint32_t object_size_ = 0;
  uint32_t slot_size_ = 0;      // object plus red zones and debug free pointer, aligned
  uint32_t object_offset_ = 0;  // start of the object within its slot (red zone size)
  uint32_t free_offset_ = 0;    // where the next-free pointer lives within a slot
  uint32_t flags_ = 0;
  uint16_t objects_ = 0;
  uint8_t order_ = 0;
  SpinLock lock_;
  PageList partial_;
  uint64_t slabs_ = 0;
  uint64_t slabs_allocated_ = 0;
  uint64_t slabs_freed_ = 0;
  uint64_t slow_frees_ = 0;
  uint64_t debug_errors_ = 0;
  uint64_t failures_ = 0;
  CpuSlab cpu_[kMaxCpus];
};

// The kmalloc size classes: 8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192.
inline constexpr unsigned kKmallocClasses = 13;
inline constexpr uint32_t kKmallocMaxCached = 8192;

// kmalloc/kfree over the size-class caches; larger requests get whole buddy blocks.
class Kmalloc {
 public:
  // Create the size-class caches (with kSlabDebug when `debug`).
  bool init(BuddyAllocator* buddy, bool debug);
  // Allocate `size` bytes (8-byte aligned; power-of-two classes are size-aligned).
  void* alloc(size_t size, Gfp gfp);
  // Free memory from alloc(); nullptr is ignored.
  void free(const void* object);
  // Return the usable size of an allocation.
  size_t usable_size(const void* object) const;
  // Return the cache serving `size`, or nullptr above kKmallocMaxCached.
  KmemCache* cache_for(size_t size);
  KmemCache& cache(unsigned index) { return caches_[index]; }

 private:
  BuddyAllocator* buddy_ = nullptr;
  KmemCache caches_[kKmallocClasses];
};

// The kernel-wide kmalloc instance used by kmalloc()/kfree() (set once at boot).
void kmalloc_set_default(Kmalloc* instance);
void* kmalloc(size_t size, Gfp gfp);
void kfree(const void* object);

}  // namespace hvmm::guest::mm
