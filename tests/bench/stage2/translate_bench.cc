// Translator benchmarks: a TLB hit and a TLB miss (a stage-2 walk), each compared, in the same
// run, with a reference that does comparable work on the same entries with the same access
// pattern:
// - a hit against a lookup of the same entries in a std::unordered_map keyed like the TLB's
//   tags ("ratio_vs_unordered_map");
// - a miss (and the walk alone) against a pointer chase through tables of the walk's depth:
//   one dependent load per level, the same number of levels and the same index bits
//   ("ratio_vs_pointer_chase").
//
// op_ns and the references are this thread's CPU time per operation (the machines are shared).
// Setup: a 40-bit IPA space (three levels: the walk reads three descriptors), 8192 pages
// mapped as 4 KiB pages, a 4096-entry TLB.
#include <benchmark/benchmark.h>

#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "hvmm/bench/figures.h"
#include "hvmm/stage2/mmu_notifier.h"
#include "hvmm/stage2/stage2_map.h"
#include "hvmm/stage2/stage2_tlb.h"
#include "hvmm/stage2/translator.h"

namespace hvmm::stage2 {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint16_t kVmid = 1;
constexpr uint64_t kPages = 8192;  // twice the TLB: cycling through them misses every time
constexpr uint64_t kTlbEntries = 4096;
constexpr uint64_t kHotPages = 64;  // the pages a hit benchmark cycles over
constexpr size_t kEntryBytes = 32;  // one TLB entry (sequence, tag, value, padding)
constexpr unsigned kIpaBits = 40;

// Frees what std::aligned_alloc returned.
struct FreeDeleter {
  void operator()(std::byte* memory) const { std::free(memory); }
};

// The IPA the i-th iteration of a hit benchmark reads (a word inside one of the hot pages).
Ipa hot_ipa(uint64_t i) {
  return Ipa((i % kHotPages) * kPageSize + 8);
}
// The IPA the i-th iteration of a miss benchmark reads (cycling over every mapped page).
Ipa cold_ipa(uint64_t i) {
  return Ipa((i % kPages) * kPageSize + 8);
}

// One VM with every page mapped and young, hooks registered as the VMM would.
struct BenchVm {
  BenchVm() {
    backing.reset(static_cast<std::byte*>(std::aligned_alloc(kPageSize, kPages * kPageSize)));
    map.emplace(std::move(Stage2Map::create(*IpaSpace::create(kIpaBits), tables,
                                            MapOptions{.max_block_level = 0}))
                    .value());
    map->add_hooks(notifier_hooks);
    map->add_hooks(tlb_hooks);
    if (!map->map(IpaRange{Ipa(0), kPages * kPageSize}, HostOffset(0), kRamAttributes).ok())
      std::abort();
    translator.emplace(std::move(Translator::create(*map, lock, tlb, registry, kVmid,
                                                    HostBacking{backing.get(), kPages * kPageSize}))
                           .value());
  }
  ~BenchVm() {
    translator.reset();
    map->remove_hooks(tlb_hooks);
    map->remove_hooks(notifier_hooks);
  }
  // Levels a walk visits (root included).
  unsigned walk_levels() const { return map->space().root_level() + 1; }

  HeapTableAllocator tables;
  std::optional<Stage2Map> map;
  std::shared_mutex lock;
  Stage2Tlb tlb{kTlbEntries};
  NotifierRegistry registry;
  NotifierHooks notifier_hooks{registry};
  TlbInvalidationHooks tlb_hooks{tlb, kVmid};
  std::unique_ptr<std::byte, FreeDeleter> backing;
  std::optional<Translator> translator;
};

// The hit reference: the TLB's entries for `pages` pages in a std::unordered_map keyed by
// (VMID, page) like the TLB's tags, with the rights checked as the TLB checks them.
class UnorderedMapReference {
 public:
  UnorderedMapReference(std::byte* backing, uint64_t pages) {
    entries_.reserve(pages);
    for (uint64_t page = 0; page < pages; ++page)
      entries_[key(kVmid, page)] = Entry{backing + page * kPageSize, Access::kRead};
  }
  // The host address of `ipa` if the entry allows `needed`, else nullptr.
  std::byte* lookup(uint16_t vmid, Ipa ipa, Access needed) const {
    auto it = entries_.find(key(vmid, ipa.page_number()));
    if (it == entries_.end() || !access_allows(it->second.granted, needed))
      return nullptr;
    return it->second.host_page + ipa.page_offset();
  }

 private:
  struct Entry {
    std::byte* host_page;
    Access granted;
  };
  static uint64_t key(uint16_t vmid, uint64_t page) { return (uint64_t{vmid} << 36) | page; }

  std::unordered_map<uint64_t, Entry> entries_;
};

// The miss reference: tables of the walk's depth and index bits (the root indexed by the bits
// above the lower levels, 512 entries below), each entry the address of the next table or of
// the host page with bit 0 as "valid". A lookup is one dependent load per level.
class PointerChaseReference {
 public:
  PointerChaseReference(const IpaSpace& space, std::byte* backing, uint64_t pages)
      : levels_(space.root_level() + 1) {
    root_ = new_table(space.root_entries());
    for (uint64_t page = 0; page < pages; ++page)
      install(Ipa(page * kPageSize), backing + page * kPageSize);
  }
  // The host address of `ipa`, or nullptr where a level has no valid entry.
  std::byte* lookup(Ipa ipa) const {
    const uint64_t* table = root_;
    for (unsigned level = levels_ - 1; level > 0; --level) {
      const uint64_t entry = table[index(ipa, level)];
      if ((entry & kValid) == 0)
        return nullptr;
      table = reinterpret_cast<const uint64_t*>(entry & ~kValid);
    }
    const uint64_t leaf = table[index(ipa, 0)];
    if ((leaf & kValid) == 0)
      return nullptr;
    return reinterpret_cast<std::byte*>(leaf & ~kValid) + ipa.page_offset();
  }
  unsigned levels() const { return levels_; }

 private:
  static constexpr uint64_t kValid = 1;
  static constexpr uint64_t kEntriesPerTable = 512;

  // The index of `ipa` in a table of `level` (0 = page level); the root takes all upper bits.
  uint64_t index(Ipa ipa, unsigned level) const {
    const uint64_t index = ipa.value() >> (kPageShift + 9 * level);
    return level == levels_ - 1 ? index : index % kEntriesPerTable;
  }
  uint64_t* new_table(uint64_t entries) {
    tables_.push_back(std::make_unique<uint64_t[]>(entries));
    return tables_.back().get();
  }
  // Create the tables down to the page level and point its entry at `host_page`.
  void install(Ipa ipa, std::byte* host_page) {
    uint64_t* table = root_;
    for (unsigned level = levels_ - 1; level > 0; --level) {
      uint64_t& entry = table[index(ipa, level)];
      if ((entry & kValid) == 0)
        entry = reinterpret_cast<uint64_t>(new_table(kEntriesPerTable)) | kValid;
      table = reinterpret_cast<uint64_t*>(entry & ~kValid);
    }
    table[index(ipa, 0)] = reinterpret_cast<uint64_t>(host_page) | kValid;
  }

  unsigned levels_;
  uint64_t* root_;
  std::vector<std::unique_ptr<uint64_t[]>> tables_;
};

// This thread's CPU time in nanoseconds. The figures and their references are CPU times: on
// a shared machine, time spent descheduled would count in one and not in the other.
double thread_cpu_ns() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec);
}

// CPU nanoseconds per call of `op(i)` for i in [0, iterations).
template <typename Op>
double cpu_ns_per_op(uint64_t iterations, Op&& op) {
  const double start = thread_cpu_ns();
  for (uint64_t i = 0; i < iterations; ++i)
    op(i);
  return (thread_cpu_ns() - start) / static_cast<double>(iterations);
}

// Time the benchmark loop (op(i) per iteration), then the reference for as many iterations,
// and report both and their ratio as op_ns, <reference>_ns and ratio_vs_<reference>.
template <typename Op, typename Reference>
void measure(benchmark::State& state, const char* reference_name, Op&& op, Reference&& reference) {
  uint64_t i = 0;
  const double start = thread_cpu_ns();
  for (auto _ : state)
    op(i++);
  if (i == 0)
    return;
  const double op_ns = (thread_cpu_ns() - start) / static_cast<double>(i);
  const double reference_ns = cpu_ns_per_op(i, reference);
  const std::string name = reference_name;
  state.counters["op_ns"] = op_ns;
  state.counters[name + "_ns"] = reference_ns;
  state.counters["ratio_vs_" + name] = op_ns / reference_ns;
}

// A TLB hit through the Translator, cycling over 64 resident pages; the reference looks the
// same 64 pages up in an std::unordered_map.
void BM_TranslateHit(benchmark::State& state) {
  BenchVm vm;
  for (uint64_t page = 0; page < kHotPages; ++page)
    benchmark::DoNotOptimize(vm.translator->translate(Ipa(page * kPageSize), Access::kRead));
  const UnorderedMapReference reference(vm.backing.get(), kHotPages);
  measure(
      state, "unordered_map",
      [&](uint64_t i) {
        auto host = vm.translator->translate(hot_ipa(i), Access::kRead);
        benchmark::DoNotOptimize(host);
      },
      [&](uint64_t i) {
        benchmark::DoNotOptimize(reference.lookup(kVmid, hot_ipa(i), Access::kRead));
      });
  if (vm.tlb.stats().misses > kHotPages)
    state.SkipWithError("the hit benchmark missed the TLB");
  if (reference.lookup(kVmid, hot_ipa(1), Access::kRead) != vm.backing.get() + kPageSize + 8)
    state.SkipWithError("the unordered_map reference resolved a page wrongly");
}
BENCHMARK(BM_TranslateHit);
HVMM_BENCHMARK_FIGURES(BM_TranslateHit, "op_ns", "unordered_map_ns", "ratio_vs_unordered_map");

// A raw Stage2Tlb lookup hit, without the Translator's Result, against the same reference.
void BM_TlbLookupHit(benchmark::State& state) {
  Stage2Tlb tlb(kTlbEntries);
  std::unique_ptr<std::byte, FreeDeleter> pages(
      static_cast<std::byte*>(std::aligned_alloc(kPageSize, kHotPages * kPageSize)));
  for (uint64_t page = 0; page < kHotPages; ++page)
    tlb.fill(kVmid, Ipa(page * kPageSize), pages.get() + page * kPageSize, Access::kRead);
  const UnorderedMapReference reference(pages.get(), kHotPages);
  measure(
      state, "unordered_map",
      [&](uint64_t i) { benchmark::DoNotOptimize(tlb.lookup(kVmid, hot_ipa(i), Access::kRead)); },
      [&](uint64_t i) {
        benchmark::DoNotOptimize(reference.lookup(kVmid, hot_ipa(i), Access::kRead));
      });
  if (tlb.stats().misses != 0)
    state.SkipWithError("the TLB lookup benchmark missed");
  if (tlb.lookup(kVmid, hot_ipa(3), Access::kRead) !=
      reference.lookup(kVmid, hot_ipa(3), Access::kRead))
    state.SkipWithError("the TLB and its reference disagree on a page");
}
BENCHMARK(BM_TlbLookupHit);
HVMM_BENCHMARK_FIGURES(BM_TlbLookupHit, "op_ns", "unordered_map_ns", "ratio_vs_unordered_map");

// A TLB miss: cycling over twice the TLB's pages evicts every entry before its reuse, so each
// translate walks the map under the shared lock and fills the TLB. The reference chases
// pointers through tables of the same depth for the same pages.
void BM_TranslateMiss(benchmark::State& state) {
  BenchVm vm;
  const PointerChaseReference reference(vm.map->space(), vm.backing.get(), kPages);
  measure(
      state, "pointer_chase",
      [&](uint64_t i) {
        auto host = vm.translator->translate(cold_ipa(i), Access::kRead);
        benchmark::DoNotOptimize(host);
      },
      [&](uint64_t i) { benchmark::DoNotOptimize(reference.lookup(cold_ipa(i))); });
  state.counters["dependent_loads"] = reference.levels();
  if (vm.tlb.stats().hits != 0)
    state.SkipWithError("the miss benchmark hit the TLB");
  if (reference.levels() != vm.walk_levels())
    state.SkipWithError("the pointer chase is not as deep as the walk");
  if (reference.lookup(cold_ipa(kPages - 1)) != vm.backing.get() + (kPages - 1) * kPageSize + 8)
    state.SkipWithError("the pointer chase resolved a page wrongly");
}
BENCHMARK(BM_TranslateMiss);
HVMM_BENCHMARK_FIGURES(BM_TranslateMiss, "op_ns", "pointer_chase_ns", "ratio_vs_pointer_chase",
                       "dependent_loads");

// The walk alone (Stage2Map::translate), against the same pointer chase.
void BM_MapTranslate(benchmark::State& state) {
  BenchVm vm;
  const PointerChaseReference reference(vm.map->space(), vm.backing.get(), kPages);
  measure(
      state, "pointer_chase",
      [&](uint64_t i) { benchmark::DoNotOptimize(vm.map->translate(cold_ipa(i))); },
      [&](uint64_t i) { benchmark::DoNotOptimize(reference.lookup(cold_ipa(i))); });
  state.counters["dependent_loads"] = reference.levels();
  auto translation = vm.map->translate(cold_ipa(5));
  if (!translation)
    state.SkipWithError("the walk found no mapping");
}
BENCHMARK(BM_MapTranslate);
HVMM_BENCHMARK_FIGURES(BM_MapTranslate, "op_ns", "pointer_chase_ns", "ratio_vs_pointer_chase",
                       "dependent_loads");

// Invalidating a range larger than the TLB: one scan of the whole array, every entry in use
// and removed, timed manually around the invalidation only (the refill is excluded), and
// compared with a memset of the array's bytes.
void BM_InvalidateHugeRange(benchmark::State& state) {
  Stage2Tlb tlb(kTlbEntries);
  alignas(kPageSize) static std::byte page_memory[kPageSize];
  const IpaRange everything{Ipa(0), uint64_t{1} << kIpaBits};
  double total_ns = 0;
  for (auto _ : state) {
    for (uint64_t page = 0; page < kTlbEntries; ++page)
      tlb.fill(kVmid, Ipa(page * kPageSize), page_memory, Access::kRead);
    const auto start = Clock::now();
    tlb.invalidate_range(kVmid, everything);
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    state.SetIterationTime(ns * 1e-9);
    total_ns += ns;
  }
  const auto iterations = static_cast<uint64_t>(state.iterations());
  if (iterations == 0)
    return;
  const size_t bytes = kTlbEntries * kEntryBytes;
  std::vector<std::byte> array_copy(bytes);
  benchmark::DoNotOptimize(array_copy.data());
  const auto memset_start = Clock::now();
  for (uint64_t i = 0; i < iterations; ++i) {
    std::memset(array_copy.data(), static_cast<int>(i), bytes);
    benchmark::ClobberMemory();
  }
  const double memset_ns =
      std::chrono::duration<double, std::nano>(Clock::now() - memset_start).count() /
      static_cast<double>(iterations);
  const double scan_ns = total_ns / static_cast<double>(iterations);
  state.counters["op_ns"] = scan_ns;
  state.counters["memset_bytes"] = static_cast<double>(bytes);
  state.counters["memset_ns"] = memset_ns;
  state.counters["ratio_vs_memset"] = scan_ns / memset_ns;
  if (tlb.stats().full_scans != iterations)
    state.SkipWithError("the huge range was not invalidated by a single scan");
}
BENCHMARK(BM_InvalidateHugeRange)->UseManualTime();
HVMM_BENCHMARK_FIGURES(BM_InvalidateHugeRange, "op_ns", "memset_ns", "ratio_vs_memset");

}  // namespace
}  // namespace hvmm::stage2
