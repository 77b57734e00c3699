// The figures a benchmark must report, checked by the shared benchmark main (bench_main.cc).
//
// Every Google Benchmark family of hvmm declares the counters it prints (its figure, the
// reference measured in the same run and their ratio). The shared main fails the run (exit
// status 1) when a declared counter is missing or not a finite number, when a benchmark has no
// declaration, or when a self-check called SkipWithError: Google Benchmark itself exits 0 then.
// A run that cannot measure here (no /dev/kvm) calls SkipWithError with a message starting
// with kSkipPrefix ("skip: no /dev/kvm ..."): it is reported as skipped with its reason, never
// as a pass, and a run of only skipped benchmarks exits with kSkipExitStatus (77, which ctest
// is told is a skip).
#pragma once

#include <initializer_list>

namespace hvmm::bench {

inline constexpr const char* kSkipPrefix = "skip: ";
inline constexpr int kSkipExitStatus = 77;

// Declare that every run of the benchmark function `family` reports the counters `figures`.
// Returns true, so it can initialise a namespace-scope constant before main runs.
bool declare_figures(const char* family, std::initializer_list<const char*> figures);

}  // namespace hvmm::bench

// HVMM_BENCHMARK_FIGURES(BM_Foo, "foo_ns", "reference_ns", "ratio"): the declaration for BM_Foo.
#define HVMM_BENCHMARK_FIGURES(family, ...)                  \
  [[maybe_unused]] static const bool hvmm_figures_##family = \
      ::hvmm::bench::declare_figures(#family, {__VA_ARGS__})
