// guest/mm allocators on the host, each beside glibc malloc+free of the same size.
//
// Every benchmark times the guest allocator and glibc in the same loop, so the ratio is
// measured under the same machine noise, in thread CPU time. Counters: ns_per_pair (guest
// alloc+free), glibc_ns_per_pair, ratio_vs_glibc (guest / glibc; aims: slab 64 B <= 1, buddy
// order-0 alloc+free < 50 ns). "Pair" loops free each object at once; "Batch" loops allocate kBatch
// objects and then free them (refills and drains of the per-CPU lists show up).
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <time.h>

#include <cstdlib>
#include <memory>

#include "hvmm/bench/figures.h"
#include "hvmm/guest/mm/buddy.h"
#include "hvmm/guest/mm/host/arena.h"
#include "hvmm/guest/mm/memblock.h"
#include "hvmm/guest/mm/slab.h"

namespace hvmm::guest::mm {
namespace {

constexpr int kInner = 4096;  // pairs per timed loop
constexpr int kBatch = 64;

// A fake machine with 256 MiB of RAM and kmalloc.
struct Machine {
  host::PhysArena arena{256u << 20};
  std::unique_ptr<Memblock> memblock = std::make_unique<Memblock>();
  std::unique_ptr<BuddyAllocator> buddy = std::make_unique<BuddyAllocator>();
  std::unique_ptr<Kmalloc> kmalloc = std::make_unique<Kmalloc>();
  Machine() {
    host::set_this_cpu(0);
    memblock->add(PhysRange{PhysAddr(0), arena.size()});
    memblock->reserve(PhysRange{PhysAddr(0), 1u << 20});
    if (!buddy->init(*memblock) || !kmalloc->init(buddy.get(), false)) {
      std::abort();
    }
  }
};

// This thread's CPU time in nanoseconds (time spent descheduled on a shared machine would
// otherwise land on whichever loop was running).
double thread_cpu_ns() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec);
}

// Time `fn` in nanoseconds of this thread's CPU time.
template <typename Fn>
double nanoseconds(Fn&& fn) {
  const double start = thread_cpu_ns();
  fn();
  return thread_cpu_ns() - start;
}

// glibc malloc+free of `size`, pairwise or batched.
double glibc_loop(size_t size, bool batch) {
  return nanoseconds([&] {
    if (!batch) {
      for (int i = 0; i < kInner; ++i) {
        void* p = std::malloc(size);
        benchmark::DoNotOptimize(p);
        std::free(p);
      }
      return;
    }
    void* held[kBatch];
    for (int round = 0; round < kInner / kBatch; ++round) {
      for (int i = 0; i < kBatch; ++i) {
        held[i] = std::malloc(size);
        benchmark::DoNotOptimize(held[i]);
      }
      for (int i = 0; i < kBatch; ++i) {
        std::free(held[i]);
      }
    }
  });
}

// Run `guest_loop` and glibc of `size` alternately and report both and their ratio.
template <typename GuestLoop>
void compare(benchmark::State& state, size_t size, bool batch, GuestLoop&& guest_loop) {
  // A batch of 64 x 4 KiB freed at the top of the heap exceeds glibc's default trim
  // threshold (128 KiB): glibc would hand it back to the kernel every round and fault it in
  // again, so the reference would time page faults. Keep it on the heap, as the guest does.
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  double guest_total = 0;
  double glibc_total = 0;
  for (auto _ : state) {
    const double guest = guest_loop();
    const double glibc = glibc_loop(size, batch);
    state.SetIterationTime(guest * 1e-9);
    guest_total += guest;
    glibc_total += glibc;
  }
  const double pairs = static_cast<double>(state.iterations()) * kInner;
  state.counters["ns_per_pair"] = guest_total / pairs;
  state.counters["glibc_ns_per_pair"] = glibc_total / pairs;
  state.counters["ratio_vs_glibc"] = guest_total / glibc_total;
}

// Buddy order-0 alloc+free (per-CPU list fast path) beside glibc malloc+free of 4 KiB.
void BM_BuddyOrder0(benchmark::State& state) {
  Machine machine;
  BuddyAllocator& buddy = *machine.buddy;
  const bool batch = state.range(0) != 0;
  buddy.drain_all();
  const uint64_t free_before = buddy.free_pages_total();
  compare(state, kPageSize, batch, [&] {
    return nanoseconds([&] {
      if (!batch) {
        for (int i = 0; i < kInner; ++i) {
          Page* page = buddy.alloc_pages(kGfpKernel, 0);
          benchmark::DoNotOptimize(page);
          buddy.free_pages(page, 0);
        }
        return;
      }
      Page* held[kBatch];
      for (int round = 0; round < kInner / kBatch; ++round) {
        for (int i = 0; i < kBatch; ++i) {
          held[i] = buddy.alloc_pages(kGfpKernel, 0);
          benchmark::DoNotOptimize(held[i]);
        }
        for (int i = 0; i < kBatch; ++i) {
          buddy.free_pages(held[i], 0);
        }
      }
    });
  });
  buddy.drain_all();
  if (buddy.free_pages_total() != free_before)
    state.SkipWithError("buddy free pages did not return to their starting count");
}

// Slab kmalloc+kfree of 64 bytes beside glibc malloc+free of 64 bytes.
void BM_Kmalloc64(benchmark::State& state) {
  Machine machine;
  Kmalloc& km = *machine.kmalloc;
  const bool batch = state.range(0) != 0;
  uint64_t failed = 0;
  compare(state, 64, batch, [&] {
    return nanoseconds([&] {
      if (!batch) {
        for (int i = 0; i < kInner; ++i) {
          void* p = km.alloc(64, kGfpKernel);
          benchmark::DoNotOptimize(p);
          failed += p == nullptr;
          km.free(p);
        }
        return;
      }
      void* held[kBatch];
      for (int round = 0; round < kInner / kBatch; ++round) {
        for (int i = 0; i < kBatch; ++i) {
          held[i] = km.alloc(64, kGfpKernel);
          benchmark::DoNotOptimize(held[i]);
          failed += held[i] == nullptr;
        }
        for (int i = 0; i < kBatch; ++i) {
          km.free(held[i]);
        }
      }
    });
  });
  if (failed != 0)
    state.SkipWithError("kmalloc(64) failed");
}

BENCHMARK(BM_BuddyOrder0)->ArgName("batch")->Arg(0)->Arg(1)->UseManualTime();
BENCHMARK(BM_Kmalloc64)->ArgName("batch")->Arg(0)->Arg(1)->UseManualTime();
HVMM_BENCHMARK_FIGURES(BM_BuddyOrder0, "ns_per_pair", "glibc_ns_per_pair", "ratio_vs_glibc");
HVMM_BENCHMARK_FIGURES(BM_Kmalloc64, "ns_per_pair", "glibc_ns_per_pair", "ratio_vs_glibc");

}  // namespace
}  // namespace hvmm::guest::mm
