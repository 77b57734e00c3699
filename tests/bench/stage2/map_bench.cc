// Stage2Map map/unmap of 1 GiB, as 4 KiB pages and as 2 MiB blocks.
//
// The reference is memset of the same number of descriptor bytes (what writing the leaves
// alone costs: 2 MiB for 262144 pages, 4 KiB for 512 blocks), timed in the same loop, so
// the figure that matters is the ratio, not the absolute time on a noisy machine.
// Counters: memset_us (the reference), ratio_vs_memset (operation / reference).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "hvmm/bench/figures.h"
#include "hvmm/stage2/stage2_map.h"

namespace hvmm::stage2 {
namespace {

using Clock = std::chrono::steady_clock;

constexpr IpaRange kGigabyte{Ipa(kHugePageSize), kHugePageSize};

// Time `fn` in seconds.
template <typename Fn>
double seconds(Fn&& fn) {
  const auto start = Clock::now();
  fn();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Run map or unmap of 1 GiB with leaves at `block_level` and time memset of the same
// descriptor bytes beside it.
void map_gigabyte(benchmark::State& state, unsigned block_level, bool time_unmap) {
  HeapTableAllocator tables;
  Stage2Map map =
      Stage2Map::create(IpaSpace::create(40).value(), tables, {.max_block_level = block_level})
          .value();
  const size_t descriptor_bytes = kHugePageSize / level_size(block_level) * sizeof(uint64_t);
  std::vector<uint8_t> reference(descriptor_bytes);
  // The buffer escapes, so the memset below cannot be dropped as a dead store.
  benchmark::DoNotOptimize(reference.data());
  double op_total = 0, memset_total = 0;
  uint8_t fill = 0;
  for (auto _ : state) {
    double op = seconds([&] {
      if (!map.map(kGigabyte, HostOffset(0), kRamAttributes).ok())
        state.SkipWithError("map");
    });
    const double unmap = seconds([&] {
      if (!map.unmap(kGigabyte).ok())
        state.SkipWithError("unmap");
    });
    if (time_unmap)
      op = unmap;
    const double ref = seconds([&] {
      std::memset(reference.data(), ++fill, reference.size());
      benchmark::ClobberMemory();
    });
    state.SetIterationTime(op);
    op_total += op;
    memset_total += ref;
  }
  state.counters["memset_us"] = memset_total * 1e6 / static_cast<double>(state.iterations());
  state.counters["ratio_vs_memset"] = op_total / memset_total;
  state.counters["descriptors"] = static_cast<double>(descriptor_bytes / sizeof(uint64_t));
}

void BM_Map1GiB_4KiBPages(benchmark::State& state) {
  map_gigabyte(state, 0, false);
}
void BM_Unmap1GiB_4KiBPages(benchmark::State& state) {
  map_gigabyte(state, 0, true);
}
void BM_Map1GiB_2MiBBlocks(benchmark::State& state) {
  map_gigabyte(state, 1, false);
}
void BM_Unmap1GiB_2MiBBlocks(benchmark::State& state) {
  map_gigabyte(state, 1, true);
}

BENCHMARK(BM_Map1GiB_4KiBPages)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Unmap1GiB_4KiBPages)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Map1GiB_2MiBBlocks)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Unmap1GiB_2MiBBlocks)->UseManualTime()->Unit(benchmark::kMicrosecond);
HVMM_BENCHMARK_FIGURES(BM_Map1GiB_4KiBPages, "memset_us", "ratio_vs_memset", "descriptors");
HVMM_BENCHMARK_FIGURES(BM_Unmap1GiB_4KiBPages, "memset_us", "ratio_vs_memset", "descriptors");
HVMM_BENCHMARK_FIGURES(BM_Map1GiB_2MiBBlocks, "memset_us", "ratio_vs_memset", "descriptors");
HVMM_BENCHMARK_FIGURES(BM_Unmap1GiB_2MiBBlocks, "memset_us", "ratio_vs_memset", "descriptors");

}  // namespace
}  // namespace hvmm::stage2
