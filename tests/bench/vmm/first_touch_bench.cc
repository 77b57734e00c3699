// First touch of 64 MiB of a memfd mapping: the host kernel resolving the faults itself (no
// userfaultfd) against hvmm's FaultHandler, side by side in each run.
//
// This is the in-process version: the touching thread is a host thread writing one byte per
// page of a shared memfd mapping, as a vCPU's guest code would, but without KVM (it runs on
// any host with userfaultfd). The version with a ring-3 guest workload under KVM comes later.
//
// BM_FirstTouch/<pattern>/<window>/<method>:
//   pattern  0 sequential (every page in order), 1 random (a quarter of the pages, seeded
//            random order, each page once)
//   window   the handler's fault-around: 4K, 64K or 2M fixed, or 0 for adaptive (up to 2M)
//   method   the zero fill: 0 UFFDIO_ZEROPAGE, 1 UFFDIO_COPY, 2 fallocate + UFFDIO_WAKE
// Figures: page_ns (handler, per touched page, wall), kernel_page_ns (the same touches of a
// fresh memfd without userfaultfd, measured in the same iteration), ratio = page_ns /
// kernel_page_ns, and allocated_ratio = memfd blocks allocated / bytes touched.
#include <benchmark/benchmark.h>

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "hvmm/bench/figures.h"
#include "hvmm/vmm/fault/fault_handler.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kMemory = 64ull << 20;
constexpr uint64_t kPages = kMemory / kPageSize;
constexpr Ipa kBase{0};

// A fresh memfd of kMemory bytes, mapped shared.
struct Backing {
  Backing() {
    fd = UniqueFd(::memfd_create("hvmm-first-touch", MFD_CLOEXEC));
    if (!fd.valid() || ::ftruncate(fd.get(), kMemory) != 0)
      return;
    void* at = ::mmap(nullptr, kMemory, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (at != MAP_FAILED)
      mapping = Mapping(at, kMemory);
  }
  uint64_t allocated() const {
    struct stat st {};
    ::fstat(fd.get(), &st);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  UniqueFd fd;
  Mapping mapping;
};

// A resolver for a VM whose every page is absent until filled: a bitmap of filled pages.
class AbsentResolver final : public FaultResolver {
 public:
  Result<FaultRun> classify(Ipa ipa, IpaRange window) override {
    const uint64_t page = ipa.page_number();
    const bool present = filled_[page];
    uint64_t first = page;
    while (first > window.start.page_number() && filled_[first - 1] == present)
      --first;
    uint64_t last = page + 1;
    while (last < window.end().page_number() && filled_[last] == present)
      ++last;
    return FaultRun{IpaRange{Ipa(first * kPageSize), (last - first) * kPageSize},
                    present ? PageCondition::kPresent : PageCondition::kAbsent};
  }
  void finish(const FaultRun& run, bool filled) override {
    if (!filled)
      return;
    for (uint64_t p = run.range.start.page_number(); p < run.range.end().page_number(); ++p) {
      filled_[p] = true;
    }
  }

 private:
  std::vector<bool> filled_ = std::vector<bool>(kPages, false);
};

// The pages a pattern touches, in order.
std::vector<uint64_t> pattern_pages(int64_t pattern) {
  std::vector<uint64_t> pages(kPages);
  for (uint64_t i = 0; i < kPages; ++i)
    pages[i] = i;
  if (pattern == 1) {
    std::mt19937_64 random(42);
    std::shuffle(pages.begin(), pages.end(), random);
    pages.resize(kPages / 4);
  }
  return pages;
}

// Write one byte per page, in order; the wall time it took.
Clock::duration touch(uint8_t* base, const std::vector<uint64_t>& pages) {
  const auto start = Clock::now();
  for (uint64_t page : pages) {
    base[page * kPageSize] = 1;
  }
  return Clock::now() - start;
}

// Handler versus kernel, one fresh memfd each per iteration.
void BM_FirstTouch(benchmark::State& state) {
  const int64_t pattern = state.range(0);
  const uint64_t window = static_cast<uint64_t>(state.range(1));
  const auto method = static_cast<ZeroFillMethod>(state.range(2));
  const std::vector<uint64_t> pages = pattern_pages(pattern);
  Clock::duration handler_time{};
  Clock::duration kernel_time{};
  uint64_t allocated = 0;
  for (auto _ : state) {
    {
      Backing kernel;
      if (!kernel.mapping.data()) {
        state.SkipWithError("memfd mapping failed");
        return;
      }
      kernel_time += touch(kernel.mapping.data(), pages);
    }
    Backing backing;
    AbsentResolver resolver;
    FaultHandlerConfig config;
    config.regions = {FaultRegion{kBase, backing.mapping.data(), HostOffset(0), kMemory}};
    config.memfd = backing.fd.get();
    config.max_window = window == 0 ? FaultWindow::kDefaultMax : window;
    config.adaptive_window = window == 0;
    config.fill = method;
    auto handler = FaultHandler::create(resolver, std::move(config));
    if (!handler) {
      state.SkipWithError(handler.error().message.c_str());
      return;
    }
    handler_time += touch(backing.mapping.data(), pages);
    allocated += backing.allocated();
    if ((*handler)->counts().resolved(FaultResolution::kFailed) != 0) {
      state.SkipWithError("a fault failed");
      return;
    }
  }
  const double touched = static_cast<double>(pages.size()) * state.iterations();
  const double page_ns = std::chrono::duration<double, std::nano>(handler_time).count() / touched;
  const double kernel_ns = std::chrono::duration<double, std::nano>(kernel_time).count() / touched;
  state.counters["page_ns"] = page_ns;
  state.counters["kernel_page_ns"] = kernel_ns;
  state.counters["ratio"] = page_ns / kernel_ns;
  state.counters["allocated_ratio"] = static_cast<double>(allocated) / (touched * kPageSize);
}
HVMM_BENCHMARK_FIGURES(BM_FirstTouch, "page_ns", "kernel_page_ns", "ratio", "allocated_ratio");
BENCHMARK(BM_FirstTouch)
    ->ArgNames({"random", "window", "fill"})
    ->ArgsProduct({{0, 1}, {4096, 65536, 2 << 20, 0}, {0}})
    ->ArgsProduct({{0}, {0}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace hvmm::vmm
