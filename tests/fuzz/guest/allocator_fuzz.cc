// Fuzz target for the guest/mm allocators: bytes drive buddy, kmem_cache, kmalloc and
// vmalloc operations on fake CPUs, and mmap/munmap/brk/page faults on one user address
// space checked page by page against a model. Every live allocation carries a tag pattern that must
// survive until it is freed, and after each input everything is freed, drained, shrunk
// and purged: the free page count must return exactly to its starting value.
// Built as a standalone driver (allocator_fuzz_main.cc) and, with clang, for libFuzzer.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "hvmm/guest/mm/address_space.h"
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
  std::unique_ptr<KmemCache> vma_cache = std::make_unique<KmemCache>();
  uint64_t baseline = 0;

  FuzzMachine() {
    host::set_cpu_count(kCpus);
    host::set_this_cpu(0);
    memblock->add(PhysRange{PhysAddr(0), arena.size()});
    memblock->reserve(PhysRange{PhysAddr(0), 1u << 20});
    if (!buddy->init(*memblock) || !kmalloc->init(buddy.get(), true) ||
        !cache->init(buddy.get(), "fuzz-200", 200, 8, kSlabDebug) || !kernel->init(buddy.get()) ||
        !vmalloc->init(buddy.get(), kernel.get(), VirtRange{VirtAddr(kVmallocStart), 1ull << 30}) ||
        !vma_cache->init(buddy.get(), "vma", sizeof(Vma), 8, kSlabNone)) {
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
      vma_cache->shrink();
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
  const Translation t = m.kernel->translate(VirtAddr(reinterpret_cast<uint64_t>(live.pointer)));
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

constexpr uint64_t kWindow = 0x40000000;  // mmap hints and probes fall in 512 pages here
constexpr uint64_t kWindowPages = 512;
constexpr uint64_t kBrkBase = 0x50000000;

// The expected state of the user address space, one entry per page.
struct SpaceModel {
  std::map<uint64_t, uint32_t> prot;  // page address -> VmProt of its area
  std::set<uint64_t> resident;        // pages mapped by a demand-zero fault
  uint64_t brk = kBrkBase;
};

[[noreturn]] void fail(const char* what, uint64_t address) {
  std::fprintf(stderr, "address space: %s at 0x%llx\n", what,
               static_cast<unsigned long long>(address));
  std::abort();
}

// Round up to a page.
uint64_t page_up(uint64_t value) {
  return (value + kPageSize - 1) & ~(kPageSize - 1);
}

// Whether the model has any page in [start, end).
bool model_busy(const SpaceModel& model, uint64_t start, uint64_t end) {
  auto it = model.prot.lower_bound(start);
  return it != model.prot.end() && it->first < end;
}

// Drop [start, end) from the model.
void model_remove(SpaceModel& model, uint64_t start, uint64_t end) {
  model.prot.erase(model.prot.lower_bound(start), model.prot.lower_bound(end));
  model.resident.erase(model.resident.lower_bound(start), model.resident.lower_bound(end));
}

// The decision the model predicts for a fault (x86: any right allows reads).
FaultDecision model_fault(const SpaceModel& model, uint64_t page, uint32_t access) {
  auto it = model.prot.find(page);
  if (it == model.prot.end()) {
    return FaultDecision::kSegv;
  }
  const uint32_t prot = it->second;
  const bool allowed = (access & kFaultWrite) != 0  ? (prot & kVmWrite) != 0
                       : (access & kFaultExec) != 0 ? (prot & kVmExec) != 0
                                                    : prot != 0;
  if (!allowed) {
    return FaultDecision::kPermissionFault;
  }
  return model.resident.count(page) != 0 ? FaultDecision::kSpurious : FaultDecision::kMapZeroPage;
}

// mmap with or without a hint in the window; check placement against the model.
void space_mmap(AddressSpace& space, SpaceModel& model, Input& in) {
  const uint64_t len = (1 + in.byte() % 16) * kPageSize;
  const uint32_t prot = in.byte() % 8;
  const uint8_t mode = in.byte() % 3;  // 0: no hint, 1: hint, 2: fixed
  const uint64_t hint = mode == 0 ? 0 : kWindow + (in.word() % kWindowPages) * kPageSize;
  const bool hint_free = hint != 0 && !model_busy(model, hint, hint + len);
  const MmResult r = space.mmap(VirtAddr(hint), len, prot, mode == 2);
  if (r.ok != (mode != 2 || hint_free)) {
    fail("mmap success differs from the model", hint);
  }
  if (!r.ok) {
    return;
  }
  if ((hint_free && r.address.value() != hint) ||
      model_busy(model, r.address.value(), r.address.value() + len)) {
    fail("mmap placed over a busy range or ignored a free hint", r.address.value());
  }
  for (uint64_t page = r.address.value(); page < r.address.value() + len; page += kPageSize) {
    model.prot[page] = prot;
  }
}

// munmap a range of the window (or of the brk area).
void space_munmap(AddressSpace& space, SpaceModel& model, MmuGather& gather, Input& in) {
  const uint64_t base = (in.byte() & 1) != 0 ? kBrkBase : kWindow;
  const uint64_t start = base + (in.word() % kWindowPages) * kPageSize;
  const uint64_t len = (1 + in.byte() % 32) * kPageSize;
  if (!space.munmap(VirtAddr(start), len, gather).ok) {
    fail("munmap refused a valid range", start);
  }
  model_remove(model, start, start + len);
}

// Move the break up or down within 64 pages of its base.
void space_brk(AddressSpace& space, SpaceModel& model, MmuGather& gather, Input& in) {
  const uint64_t target = kBrkBase + in.word() % (64 * kPageSize);
  const uint64_t old_top = page_up(model.brk);
  const uint64_t new_top = page_up(target);
  const bool expect_ok = new_top <= old_top || !model_busy(model, old_top, new_top);
  const MmResult r = space.brk(VirtAddr(target), gather);
  if (r.ok != expect_ok) {
    fail("brk success differs from the model", target);
  }
  if (!r.ok) {
    return;
  }
  if (new_top > old_top) {
    for (uint64_t page = old_top; page < new_top; page += kPageSize) {
      model.prot[page] = kVmRead | kVmWrite;
    }
  } else {
    model_remove(model, new_top, old_top);
  }
  model.brk = target;
}

// Fault on a page of the window, the brk area or a known area; compare the decision.
void space_fault(AddressSpace& space, SpaceModel& model, Input& in) {
  uint64_t page;
  const uint8_t where = in.byte() % 3;
  if (where == 2 && !model.prot.empty()) {
    auto it = model.prot.begin();
    std::advance(it, static_cast<long>(in.word() % model.prot.size()));
    page = it->first;
  } else {
    page = (where == 0 ? kWindow : kBrkBase) + (in.word() % kWindowPages) * kPageSize;
  }
  const uint32_t access = in.byte() % 3 == 0     ? kFaultRead
                          : (in.byte() & 1) != 0 ? kFaultWrite
                                                 : kFaultExec;
  const FaultDecision expected = model_fault(model, page, access);
  if (space.handle_fault(VirtAddr(page + in.byte()), access) != expected) {
    fail("fault decision differs from the model", page);
  }
  if (expected == FaultDecision::kMapZeroPage) {
    model.resident.insert(page);
  }
}

// One address-space operation chosen by the input, then structural checks.
void space_op(AddressSpace& space, SpaceModel& model, MmuGather& gather, Input& in) {
  switch (in.byte() % 4) {
    case 0:
      space_mmap(space, model, in);
      break;
    case 1:
      space_munmap(space, model, gather, in);
      break;
    case 2:
      space_brk(space, model, gather, in);
      break;
    default:
      space_fault(space, model, in);
  }
  gather.release();
  if (!space.vmas().validate() || space.stats().resident_pages != model.resident.size()) {
    fail("VMA tree invalid or resident count wrong", 0);
  }
}

// Run one input, then free everything and compare the free page count with the baseline.
void run_one(const uint8_t* data, size_t size) {
  static FuzzMachine machine;
  FuzzMachine& m = machine;
  Input in(data, size);
  std::vector<Live> live;
  auto space = std::make_unique<AddressSpace>();
  if (!space->init(m.buddy.get(), m.vma_cache.get(), *m.kernel, VirtAddr(kBrkBase))) {
    std::abort();
  }
  SpaceModel model;
  MmuGather gather(m.buddy.get());
  while (!in.done()) {
    const uint8_t op = in.byte();
    if (op % 10 >= 8) {
      space_op(*space, model, gather, in);
      continue;
    }
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
  space->destroy(gather);
  gather.release();
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
