// Benchmarks that the shared benchmark main must refuse, one per kind of problem, and one it
// must accept. ctest runs each alone (--benchmark_filter) and checks the exit status and the
// reported problem (tests/bench/support/CMakeLists.txt).
#include <benchmark/benchmark.h>

#include "hvmm/bench/figures.h"

namespace {

// Reports every declared figure: accepted.
void BM_CheckerAcceptsFigures(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(state.iterations());
  }
  state.counters["figure_ns"] = 1.0;
  state.counters["ratio"] = 2.0;
}
BENCHMARK(BM_CheckerAcceptsFigures);
HVMM_BENCHMARK_FIGURES(BM_CheckerAcceptsFigures, "figure_ns", "ratio");

// A self-check that fails: Google Benchmark alone would still exit 0.
void BM_CheckerRefusesSelfCheck(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(state.iterations());
  }
  state.counters["figure_ns"] = 1.0;
  state.SkipWithError("deliberate self-check failure");
}
BENCHMARK(BM_CheckerRefusesSelfCheck);
HVMM_BENCHMARK_FIGURES(BM_CheckerRefusesSelfCheck, "figure_ns");

// Forgets the ratio it declared.
void BM_CheckerRefusesMissingFigure(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(state.iterations());
  }
  state.counters["figure_ns"] = 1.0;
}
BENCHMARK(BM_CheckerRefusesMissingFigure);
HVMM_BENCHMARK_FIGURES(BM_CheckerRefusesMissingFigure, "figure_ns", "ratio");

// Reports a ratio that is not a number (a zero reference).
void BM_CheckerRefusesNonFiniteFigure(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(state.iterations());
  }
  const double zero_reference = static_cast<double>(state.iterations() - state.iterations());
  state.counters["ratio"] = zero_reference / zero_reference;
}
BENCHMARK(BM_CheckerRefusesNonFiniteFigure);
HVMM_BENCHMARK_FIGURES(BM_CheckerRefusesNonFiniteFigure, "ratio");

// Declares nothing.
void BM_CheckerRefusesUndeclared(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(state.iterations());
  }
}
BENCHMARK(BM_CheckerRefusesUndeclared);

}  // namespace
