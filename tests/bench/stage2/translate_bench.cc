// Translator benchmarks: a TLB hit and a TLB miss (a stage-2 walk), each compared, in the same
// run, with a memset of the bytes the operation reads: one TLB entry for a hit, one 8-byte
// descriptor per level for a walk. The ratio is reported as "ratio_vs_memset".
//
// Setup: a 40-bit IPA space (three levels: the walk reads three descriptors), 8192 pages
// mapped as 4 KiB pages, a 4096-entry TLB.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <shared_mutex>

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
constexpr size_t kHitBytes = 32;  // one TLB entry (sequence, tag, value, padding)

// Frees what std::aligned_alloc returned.
struct FreeDeleter {
  void operator()(std::byte* memory) const { std::free(memory); }
};

// One VM with every page mapped and young, hooks registered as the VMM would.
struct BenchVm {
  BenchVm() {
    backing.reset(static_cast<std::byte*>(std::aligned_alloc(kPageSize, kPages * kPageSize)));
    map.emplace(std::move(Stage2Map::create(*IpaSpace::create(40), tables,
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

// Nanoseconds per memset of `bytes` bytes (a libc call: the size is not a constant), over
// `iterations` calls.
double memset_ns(size_t bytes, uint64_t iterations) {
  alignas(64) static std::byte buffer[256];
  volatile size_t size = bytes;
  const auto start = Clock::now();
  for (uint64_t i = 0; i < iterations; ++i) {
    std::memset(buffer, static_cast<int>(i), size);
    benchmark::DoNotOptimize(buffer);
    benchmark::ClobberMemory();
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
         static_cast<double>(iterations);
}

// Put the per-operation time, the memset time and their ratio in the counters.
void report(benchmark::State& state, Clock::time_point start, size_t bytes) {
  const auto iterations = static_cast<uint64_t>(state.iterations());
  if (iterations == 0)
    return;
  const double op_ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
                       static_cast<double>(iterations);
  const double reference_ns = memset_ns(bytes, iterations);
  state.counters["op_ns"] = op_ns;
  state.counters["memset_bytes"] = static_cast<double>(bytes);
  state.counters["memset_ns"] = reference_ns;
  state.counters["ratio_vs_memset"] = op_ns / reference_ns;
}

// A TLB hit through the Translator, cycling over 64 resident pages.
void BM_TranslateHit(benchmark::State& state) {
  BenchVm vm;
  for (uint64_t page = 0; page < 64; ++page)
    benchmark::DoNotOptimize(vm.translator->translate(Ipa(page * kPageSize), Access::kRead));
  uint64_t page = 0;
  const auto start = Clock::now();
  for (auto _ : state) {
    auto host = vm.translator->translate(Ipa((page++ & 63) * kPageSize + 8), Access::kRead);
    benchmark::DoNotOptimize(host);
  }
  report(state, start, kHitBytes);
  if (vm.tlb.stats().misses > 64)
    state.SkipWithError("the hit benchmark missed the TLB");
}
BENCHMARK(BM_TranslateHit);

// A raw Stage2Tlb lookup hit, without the Translator's Result.
void BM_TlbLookupHit(benchmark::State& state) {
  Stage2Tlb tlb(kTlbEntries);
  alignas(kPageSize) static std::byte page_memory[kPageSize];
  for (uint64_t page = 0; page < 64; ++page)
    tlb.fill(kVmid, Ipa(page * kPageSize), page_memory, Access::kRead);
  uint64_t page = 0;
  const auto start = Clock::now();
  for (auto _ : state)
    benchmark::DoNotOptimize(tlb.lookup(kVmid, Ipa((page++ & 63) * kPageSize), Access::kRead));
  report(state, start, kHitBytes);
}
BENCHMARK(BM_TlbLookupHit);

// A TLB miss: cycling over twice the TLB's pages evicts every entry before its reuse, so each
// translate walks the map under the shared lock and fills the TLB.
void BM_TranslateMiss(benchmark::State& state) {
  BenchVm vm;
  uint64_t page = 0;
  const auto start = Clock::now();
  for (auto _ : state) {
    auto host = vm.translator->translate(Ipa((page++ % kPages) * kPageSize + 8), Access::kRead);
    benchmark::DoNotOptimize(host);
  }
  report(state, start, size_t{8} * vm.walk_levels());
  state.counters["walk_levels"] = vm.walk_levels();
  if (vm.tlb.stats().hits != 0)
    state.SkipWithError("the miss benchmark hit the TLB");
}
BENCHMARK(BM_TranslateMiss);

// The walk alone (Stage2Map::translate), for comparison with the full miss path.
void BM_MapTranslate(benchmark::State& state) {
  BenchVm vm;
  uint64_t page = 0;
  const auto start = Clock::now();
  for (auto _ : state)
    benchmark::DoNotOptimize(vm.map->translate(Ipa((page++ % kPages) * kPageSize)));
  report(state, start, size_t{8} * vm.walk_levels());
}
BENCHMARK(BM_MapTranslate);

// Invalidating a range larger than the TLB: one scan of the whole array, every entry in use
// and removed, timed manually around the invalidation only (the refill is excluded), and
// compared with a memset of the array's bytes.
void BM_InvalidateHugeRange(benchmark::State& state) {
  Stage2Tlb tlb(kTlbEntries);
  alignas(kPageSize) static std::byte page_memory[kPageSize];
  const IpaRange everything{Ipa(0), uint64_t{1} << 40};
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
  const size_t bytes = kTlbEntries * kHitBytes;
  static std::byte array_copy[kTlbEntries * kHitBytes];
  const auto memset_start = Clock::now();
  for (uint64_t i = 0; i < iterations; ++i) {
    std::memset(array_copy, static_cast<int>(i), bytes);
    benchmark::DoNotOptimize(array_copy);
    benchmark::ClobberMemory();
  }
  const double memset_time =
      std::chrono::duration<double, std::nano>(Clock::now() - memset_start).count() /
      static_cast<double>(iterations);
  const double scan_ns = total_ns / static_cast<double>(iterations);
  state.counters["op_ns"] = scan_ns;
  state.counters["memset_bytes"] = static_cast<double>(bytes);
  state.counters["memset_ns"] = memset_time;
  state.counters["ratio_vs_memset"] = scan_ns / memset_time;
  if (tlb.stats().full_scans != iterations)
    state.SkipWithError("the huge range was not invalidated by a single scan");
}
BENCHMARK(BM_InvalidateHugeRange)->UseManualTime();

}  // namespace
}  // namespace hvmm::stage2

BENCHMARK_MAIN();
