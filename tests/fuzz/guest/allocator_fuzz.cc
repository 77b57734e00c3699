// Fuzz target for the guest/mm allocators: bytes drive buddy, kmem_cache, kmalloc and
// vmalloc operations on fake CPUs. Every live allocation carries a tag pattern that must
// survive until it is freed, and after each input everything is freed, drained, shrunk
// and purged: the free page count must return exactly to its starting value.
// Built as a standalone driver (allocator_fuzz_main.cc) and, with clang, for libFuzzer.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "hvmm/guest/mm/buddy.h"
#include "hvmm/guest/mm/host/arena.h"
#include "hvmm/guest/mm/memblock.h"
#include "hvmm/guest/mm/page_table.h"
#include "hvmm/guest/mm/slab.h"
#include "hvmm/guest/mm/vmalloc.h"

namespace hvmm::guest::mm {
namespace {

constexpr uint64_t kVmallocStart = 0xffffc90000000000ull;
constexpr unsigned kCpus = 4;

// The machine shared by all inputs (built once: the arena is 32 MiB).
struct FuzzMachine {
  host::PhysArena arena{32u << 20};
  std::unique_ptr<Memblock> memblock = std::make_unique<Memblock>();
  std::unique_ptr<BuddyAllocator> buddy = std::make_unique<BuddyAllocator>();
  std::unique_ptr<Kmalloc> kmalloc = std::make_unique<Kmalloc>();
  std::unique_ptr<KmemCache> cache = std::make_unique<KmemCache>();
  std::unique_ptr<PageTable> kernel = std::make_unique<PageTable>();
  std::unique_ptr<Vmalloc> vmalloc = std::make_unique<Vmalloc>();
  uint64_t baseline = 0;

  FuzzMachine() {
    host::set_cpu_count(kCpus);
    host::set_this_cpu(0);
    memblock->add(0, arena.size());
    memblock->reserve(0, 1u << 20);
    if (!buddy->init(*memblock) || !kmalloc->init(buddy.get(), true) ||
        !cache->init(buddy.get(), "fuzz-200", 200, 8, kSlabDebug) || !kernel->init(buddy.get()) ||
        !vmalloc->init(buddy.get(), kernel.get(), kVmallocStart, kVmallocStart + (1ull << 30))) {
      std::abort();
    }
    KmemCache::set_report_hook([](const char* cache_name, const char* problem, const void*) {
      std::fprintf(stderr, "slab debug report in %s: %s\n", cache_name, problem);
      std::abort();
    });
    settle();
    baseline = accounted_pages();
  }

  // Return every cached object and frame to the buddy lists.
  void settle() {
    for (unsigned cpu = 0; cpu < kCpus; ++cpu) {
      host::set_this_cpu(cpu);
      for (unsigned i = 0; i < kKmallocClasses; ++i) {
        kmalloc->cache(i).shrink();
      }
      cache->shrink();
      vmalloc->purge();
    }
    host::set_this_cpu(0);
    buddy->drain_all();
  }

  // Free frames plus kernel table pages: vmalloc keeps the tables it creates (as Linux
  // does), so they are accounted as if free.
  uint64_t accounted_pages() const { return buddy->free_pages_total() + kernel->table_pages(); }
};

// One live allocation.
struct Live {
  enum Kind { kPages, kKmalloc, kCache, kVmalloc } kind;
  void* pointer;   // data (direct map, or the vmalloc address)
  uint64_t size;   // bytes checked
  unsigned order;  // for kPages
  uint8_t tag;
};

// Reads the input byte by byte (zeros after the end).
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t word() { return static_cast<uint16_t>(byte() | (byte() << 8)); }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// The bytes behind an allocation as the host can reach them (vmalloc: first page only).
uint8_t* bytes_of(FuzzMachine& m, const Live& live) {
  if (live.kind != Live::kVmalloc) {
    return static_cast<uint8_t*>(live.pointer);
  }
  const Translation t = m.kernel->translate(reinterpret_cast<uint64_t>(live.pointer));
  if (!t.present) {
    std::abort();
  }
  return static_cast<uint8_t*>(arch::phys_to_virt(t.pa));
}

// Fill or check an allocation's tag.
void stamp(FuzzMachine& m, const Live& live) {
  std::memset(bytes_of(m, live), live.tag, live.size);
}
void check(FuzzMachine& m, const Live& live) {
  const uint8_t* p = bytes_of(m, live);
  for (uint64_t i = 0; i < live.size; ++i) {
    if (p[i] != live.tag) {
      std::fprintf(stderr, "allocation of kind %d corrupted at byte %llu\n", live.kind,
                   static_cast<unsigned long long>(i));
      std::abort();
    }
  }
}

// Free one live allocation (on the current fake CPU).
void release(FuzzMachine& m, const Live& live) {
  check(m, live);
  switch (live.kind) {
    case Live::kPages:
      m.buddy->free_pages(m.buddy->virt_to_page(live.pointer), live.order);
      break;
    case Live::kKmalloc:
      m.kmalloc->free(live.pointer);
      break;
    case Live::kCache:
      m.cache->free(live.pointer);
      break;
    case Live::kVmalloc:
      m.vmalloc->free(live.pointer);
      break;
  }
}

// Try one allocation chosen by the input; record it if it succeeded.
void allocate(FuzzMachine& m, Input& in, unsigned op, std::vector<Live>& live) {
  Live item{};
  item.tag = in.byte();
  const Gfp gfp = (in.byte() & 1) != 0 ? kGfpAtomic : kGfpKernel;
  if (op == 0) {
    item.kind = Live::kPages;
    item.order = in.byte() % 6;
    Page* page = m.buddy->alloc_pages(gfp, item.order);
    item.pointer = page == nullptr ? nullptr : m.buddy->page_address(page);
    item.size = kPageSize << item.order;
  } else if (op == 1) {
    item.kind = Live::kKmalloc;
    item.size = 1 + in.word() % 12000;
    item.pointer = m.kmalloc->alloc(item.size, gfp);
  } else if (op == 2) {
    item.kind = Live::kCache;
    item.size = 200;
    item.pointer = m.cache->alloc(gfp);
  } else {
    item.kind = Live::kVmalloc;
    const uint64_t size = 1 + in.word() % (6 * kPageSize);
    item.size = size < kPageSize ? size : kPageSize;
    item.pointer = m.vmalloc->alloc(size, gfp);
  }
  if (item.pointer != nullptr) {
    stamp(m, item);
    live.push_back(item);
  }
}

// Run one input, then free everything and compare the free page count with the baseline.
void run_one(const uint8_t* data, size_t size) {
  static FuzzMachine machine;
  FuzzMachine& m = machine;
  Input in(data, size);
  std::vector<Live> live;
  while (!in.done()) {
    const uint8_t op = in.byte();
    switch (op % 8) {
      case 0:
      case 1:
      case 2:
      case 3:
        allocate(m, in, op % 8, live);
        break;
      case 4:
      case 5:
        if (!live.empty()) {
          const size_t index = in.word() % live.size();
          release(m, live[index]);
          live[index] = live.back();
          live.pop_back();
        }
        break;
      case 6:
        host::set_this_cpu(in.byte() % kCpus);
        break;
      default:
        if ((op & 0x10) != 0) {
          m.vmalloc->purge();
        } else {
          m.kmalloc->cache(in.byte() % kKmallocClasses).shrink();
        }
    }
  }
  for (const Live& item : live) {
    release(m, item);
  }
  m.settle();
  if (m.accounted_pages() != m.baseline) {
    std::fprintf(stderr, "leak: %llu free pages, expected %llu\n",
                 static_cast<unsigned long long>(m.accounted_pages()),
                 static_cast<unsigned long long>(m.baseline));
    std::abort();
  }
}

}  // namespace
}  // namespace hvmm::guest::mm

// The libFuzzer entry point (also called by the standalone driver).
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hvmm::guest::mm::run_one(data, size);
  return 0;
}
