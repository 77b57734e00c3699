// The reclaim pool (vmm/reclaim/pool/) against the raw compressors, side by side in one run,
// per codec and corpus:
//
// BM_PoolStore/<codec>/<corpus>: CompressedPool::store() of every page of the corpus into a
//   fresh pool without a limit, against raw LZ4_compress_default / ZSTD_compressCCtx (level
//   1, one context) of the same pages into a buffer. Figures: store_mib_s, raw_mib_s (of page
//   bytes), ratio = store / raw (aim >= 0.7), compression_ratio and fragmentation (the pool's
//   figures: page bytes per payload byte of its compressed entries, and the share of its span
//   bytes holding no payload), raw_compression_ratio (every page's bytes per raw payload
//   byte), same_share and incompressible_share (of the corpus's pages).
// BM_PoolLoad/<codec>/<corpus>: load() of every page the pool holds, against raw
//   LZ4_decompress_safe / ZSTD_decompressDCtx of the raw payloads of the same pages. Figures:
//   load_mib_s, raw_mib_s, ratio = load / raw, load_ns (per page). Every loaded page is
//   compared with the corpus first (a mismatch fails the run).
//
// codec 0 = lz4, 1 = zstd. Corpus 0 = the pattern mix (base/include/hvmm/base/pattern_mix.h,
// seed 1, 8192 pages: 37.5% zero, 37.5% text-like, 25% random). Corpus 1 = this process's own
// memory: every executable file mapping (the benchmark's text and that of the libraries it
// runs: libstdc++, libc, libzstd, liblz4, libbenchmark, ...) and its brk heap after a real
// workload, a std::map of 60000 strings (keys "user-<n>@example.org", values of sentences
// built from a word list) built before the copy.
#include <benchmark/benchmark.h>
#include <lz4.h>
#include <zstd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "hvmm/base/pattern_mix.h"
#include "hvmm/bench/figures.h"
#include "hvmm/vmm/reclaim/pool/compressed_pool.h"
#include "hvmm/vmm/reclaim/pool/page_codec.h"

namespace hvmm::vmm {
namespace {

using Clock = std::chrono::steady_clock;
using Page = std::array<uint8_t, kPageSize>;

constexpr uint64_t kMixPages = 8192;
constexpr int kMapEntries = 60000;

// Page `page` of the pattern mix of seed 1.
Page mix_page(uint64_t page) {
  Page out;
  for (uint64_t i = 0; i < pattern::kPageWords; ++i) {
    const uint64_t word = pattern::mix_word(1, page, i);
    std::memcpy(out.data() + i * 8, &word, 8);
  }
  return out;
}

// The map workload whose heap corpus 1 copies; kept alive for the process's life.
const std::map<std::string, std::string>& map_workload() {
  static const std::map<std::string, std::string> map = [] {
    static const char* words[] = {"guest", "memory", "page", "fault", "reclaim", "the",
                                  "cold",  "pool",   "of",   "epoch", "written", "and"};
    std::map<std::string, std::string> m;
    uint64_t state = 12345;
    for (int n = 0; n < kMapEntries; ++n) {
      std::string value;
      const int count = 6 + static_cast<int>(pattern::mix64(state++) % 12);
      for (int w = 0; w < count; ++w) {
        value += words[pattern::mix64(state++) % 12];
        value += ' ';
      }
      m.emplace("user-" + std::to_string(pattern::mix64(n) % 10000000) + "@example.org", value);
    }
    return m;
  }();
  return map;
}

// Append the pages of [start, end) of this process to `pages`.
void copy_pages(uint64_t start, uint64_t end, std::vector<Page>& pages) {
  for (uint64_t at = start; at + kPageSize <= end; at += kPageSize) {
    pages.emplace_back();
    std::memcpy(pages.back().data(), reinterpret_cast<const void*>(at), kPageSize);
  }
}

// Corpus 1: this process's executable file mappings and its heap (after the map workload).
std::vector<Page> own_memory_pages() {
  benchmark::DoNotOptimize(map_workload().size());
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    std::istringstream fields(line);
    std::string range, perms, offset, device, inode, path;
    fields >> range >> perms >> offset >> device >> inode >> path;
    const bool text =
        perms.size() == 4 && perms[0] == 'r' && perms[2] == 'x' && !path.empty() && path[0] == '/';
    if (!text && path != "[heap]") {
      continue;
    }
    const size_t dash = range.find('-');
    ranges.emplace_back(std::stoull(range.substr(0, dash), nullptr, 16),
                        std::stoull(range.substr(dash + 1), nullptr, 16));
  }
  std::vector<Page> pages;
  uint64_t total = 0;
  for (const auto& [start, end] : ranges) {
    total += (end - start) / kPageSize;
  }
  pages.reserve(total);  // one allocation (mmap'ed: too large for the heap being copied)
  for (const auto& [start, end] : ranges) {
    copy_pages(start, end, pages);
  }
  return pages;
}

// The corpus `which` (built once).
const std::vector<Page>& corpus(int64_t which) {
  static const std::vector<Page> mix = [] {
    std::vector<Page> pages;
    for (uint64_t p = 0; p < kMixPages; ++p) {
      pages.push_back(mix_page(p));
    }
    return pages;
  }();
  static const std::vector<Page> own = own_memory_pages();
  return which == 0 ? mix : own;
}

// RAII zstd contexts for the raw reference.
struct ZstdContexts {
  ZstdContexts() : compress(ZSTD_createCCtx()), decompress(ZSTD_createDCtx()) {}
  ~ZstdContexts() {
    ZSTD_freeCCtx(compress);
    ZSTD_freeDCtx(decompress);
  }
  ZstdContexts(const ZstdContexts&) = delete;
  ZstdContexts& operator=(const ZstdContexts&) = delete;
  ZSTD_CCtx* compress;
  ZSTD_DCtx* decompress;
};

// Raw compression of one page into `out`; the payload's length.
size_t raw_compress(Codec codec, ZstdContexts& zstd, const Page& page, std::vector<uint8_t>& out) {
  if (codec == Codec::kLz4) {
    return static_cast<size_t>(LZ4_compress_default(
        reinterpret_cast<const char*>(page.data()), reinterpret_cast<char*>(out.data()),
        static_cast<int>(kPageSize), static_cast<int>(out.size())));
  }
  return ZSTD_compressCCtx(zstd.compress, out.data(), out.size(), page.data(), kPageSize,
                           kZstdLevel);
}

// Raw decompression of `payload` into `out`; true when it gave a whole page.
bool raw_decompress(Codec codec, ZstdContexts& zstd, const std::vector<uint8_t>& payload,
                    Page& out) {
  if (codec == Codec::kLz4) {
    return LZ4_decompress_safe(reinterpret_cast<const char*>(payload.data()),
                               reinterpret_cast<char*>(out.data()),
                               static_cast<int>(payload.size()),
                               static_cast<int>(kPageSize)) == static_cast<int>(kPageSize);
  }
  return ZSTD_decompressDCtx(zstd.decompress, out.data(), kPageSize, payload.data(),
                             payload.size()) == kPageSize;
}

// A fresh unlimited pool of `codec` holding every page of `pages` it keeps.
std::unique_ptr<CompressedPool> filled_pool(Codec codec, const std::vector<Page>& pages) {
  PoolConfig config;
  config.codec = codec;
  auto pool = CompressedPool::create(std::move(config));
  if (!pool) {
    return nullptr;
  }
  for (size_t i = 0; i < pages.size(); ++i) {
    if (!(*pool)->store(Ipa(i * kPageSize), pages[i]).ok()) {
      return nullptr;
    }
  }
  return std::move(*pool);
}

// MiB per second of `pages` pages in `time`.
double mib_per_s(uint64_t pages, Clock::duration time) {
  return static_cast<double>(pages * kPageSize) / (1 << 20) /
         std::chrono::duration<double>(time).count();
}

// Store every page of `pages` into `pool`; the time it took, or nothing after an error.
std::optional<Clock::duration> store_all(CompressedPool& pool, const std::vector<Page>& pages) {
  const auto start = Clock::now();
  for (size_t i = 0; i < pages.size(); ++i) {
    if (!pool.store(Ipa(i * kPageSize), pages[i]).ok()) {
      return std::nullopt;
    }
  }
  return Clock::now() - start;
}

// Pool store() against raw compression of the same pages: into a fresh pool (its spans are
// mapped as it grows) or into a warm one (every page stored again: slots are reused).
void BM_PoolStore(benchmark::State& state) {
  const Codec codec = state.range(0) == 0 ? Codec::kLz4 : Codec::kZstd;
  const std::vector<Page>& pages = corpus(state.range(1));
  const bool warm = state.range(2) != 0;
  ZstdContexts zstd;
  std::vector<uint8_t> out(kPageSize * 2);
  Clock::duration pool_time{}, raw_time{};
  uint64_t raw_bytes = 0, passes = 0;
  std::unique_ptr<CompressedPool> pool = warm ? filled_pool(codec, pages) : nullptr;
  ReclaimStoreStats stats;
  for (auto _ : state) {
    raw_bytes = 0;
    const auto start = Clock::now();
    for (const Page& page : pages) {
      raw_bytes += raw_compress(codec, zstd, page, out);
    }
    raw_time += Clock::now() - start;
    benchmark::DoNotOptimize(raw_bytes);
    if (!warm) {
      PoolConfig config;
      config.codec = codec;
      auto created = CompressedPool::create(std::move(config));
      pool = created ? std::move(*created) : nullptr;
    }
    const auto took = pool ? store_all(*pool, pages) : std::nullopt;
    if (!took) {
      state.SkipWithError("a store failed");
      return;
    }
    pool_time += *took;
    stats = pool->stats();
    ++passes;
  }
  const double store = mib_per_s(pages.size() * passes, pool_time);
  const double raw = mib_per_s(pages.size() * passes, raw_time);
  const double n = static_cast<double>(pages.size());
  state.counters["pages"] = n;
  state.counters["store_mib_s"] = store;
  state.counters["raw_mib_s"] = raw;
  state.counters["ratio"] = store / raw;
  state.counters["compression_ratio"] = stats.compression_ratio();
  state.counters["raw_compression_ratio"] = n * kPageSize / static_cast<double>(raw_bytes);
  state.counters["fragmentation"] = stats.fragmentation();
  state.counters["same_share"] =
      static_cast<double>(stats.zero_pages + stats.same_filled_pages) / n;
  state.counters["incompressible_share"] =
      static_cast<double>(stats.incompressible_rejects) / static_cast<double>(stats.stores);
}
HVMM_BENCHMARK_FIGURES(BM_PoolStore, "store_mib_s", "raw_mib_s", "ratio", "compression_ratio",
                       "raw_compression_ratio", "fragmentation", "same_share",
                       "incompressible_share");
BENCHMARK(BM_PoolStore)
    ->ArgNames({"zstd", "own", "warm"})
    ->ArgsProduct({{0, 1}, {0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Pool load() against raw decompression of the same pages.
void BM_PoolLoad(benchmark::State& state) {
  const Codec codec = state.range(0) == 0 ? Codec::kLz4 : Codec::kZstd;
  const std::vector<Page>& pages = corpus(state.range(1));
  ZstdContexts zstd;
  auto pool = filled_pool(codec, pages);
  if (!pool) {
    state.SkipWithError("the pool could not be filled");
    return;
  }
  // The pages the pool holds, their raw payloads, and a check that each loads back intact.
  std::vector<size_t> held;
  std::vector<std::vector<uint8_t>> payloads;
  std::vector<uint8_t> out(kPageSize * 2);
  Page page{};
  for (size_t i = 0; i < pages.size(); ++i) {
    if (!pool->contains(Ipa(i * kPageSize))) {
      continue;
    }
    if (!pool->load(Ipa(i * kPageSize), page).ok() || page != pages[i]) {
      state.SkipWithError("a page did not load back intact");
      return;
    }
    held.push_back(i);
    const size_t n = raw_compress(codec, zstd, pages[i], out);
    payloads.emplace_back(out.begin(), out.begin() + static_cast<ptrdiff_t>(n));
  }
  Clock::duration pool_time{}, raw_time{};
  uint64_t passes = 0;
  for (auto _ : state) {
    auto start = Clock::now();
    for (const std::vector<uint8_t>& payload : payloads) {
      if (!raw_decompress(codec, zstd, payload, page)) {
        state.SkipWithError("raw decompression failed");
        return;
      }
    }
    raw_time += Clock::now() - start;
    start = Clock::now();
    for (size_t i : held) {
      if (!pool->load(Ipa(i * kPageSize), page).ok()) {
        state.SkipWithError("a load failed");
        return;
      }
    }
    pool_time += Clock::now() - start;
    benchmark::DoNotOptimize(page);
    ++passes;
  }
  const double load = mib_per_s(held.size() * passes, pool_time);
  const double raw = mib_per_s(held.size() * passes, raw_time);
  state.counters["pages"] = static_cast<double>(held.size());
  state.counters["load_mib_s"] = load;
  state.counters["raw_mib_s"] = raw;
  state.counters["ratio"] = load / raw;
  state.counters["load_ns"] = std::chrono::duration<double, std::nano>(pool_time).count() /
                              static_cast<double>(held.size() * passes);
}
HVMM_BENCHMARK_FIGURES(BM_PoolLoad, "load_mib_s", "raw_mib_s", "ratio", "load_ns");
BENCHMARK(BM_PoolLoad)
    ->ArgNames({"zstd", "own"})
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace hvmm::vmm
