// The main of every hvmm Google Benchmark executable: runs the benchmarks with the usual
// display reporter, and checks each reported run against the figures its family declared.
#include <benchmark/benchmark.h>

#include <cmath>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "hvmm/bench/figures.h"

namespace hvmm::bench {
namespace {

// Benchmark function name -> counters every run of it must report.
std::map<std::string, std::vector<std::string>>& declarations() {
  static std::map<std::string, std::vector<std::string>> table;
  return table;
}

// CheckingReporter forwards everything to the display reporter and records what is wrong
// with each run: a failed self-check, an undeclared benchmark, a missing or non-finite figure.
class CheckingReporter final : public benchmark::BenchmarkReporter {
 public:
  explicit CheckingReporter(benchmark::BenchmarkReporter* display) : display_(display) {}

  bool ReportContext(const Context& context) override { return display_->ReportContext(context); }
  void ReportRuns(const std::vector<Run>& runs) override {
    display_->ReportRuns(runs);
    for (const Run& run : runs) {
      check(run);
    }
  }
  void Finalize() override { display_->Finalize(); }

  // Print the verdict on stderr (stdout may carry JSON); true when nothing was wrong.
  bool verdict(bool whole_suite) {
    if (whole_suite) {
      for (const auto& [family, figures] : declarations()) {
        if (seen_.count(family) == 0) {
          problems_.push_back(family + ": declared but never ran");
        }
      }
    }
    for (const std::string& skip : skips_) {
      std::cerr << "bench check: SKIP " << skip << "\n";
    }
    if (problems_.empty()) {
      std::cerr << "bench check: " << runs_ << " runs of " << seen_.size() << " benchmarks ("
                << skips_.size()
                << " skipped), every declared figure of the others present, no self-check "
                   "failed\n";
      return true;
    }
    std::cerr << "bench check FAILED (" << problems_.size() << " problems):\n";
    for (const std::string& problem : problems_) {
      std::cerr << "  " << problem << "\n";
    }
    return false;
  }

  // Every run was skipped (and at least one ran).
  bool all_skipped() const { return runs_ > 0 && skips_.size() == runs_; }

 private:
  // Record the problems of one run (aggregates repeat their runs' counters and are skipped).
  void check(const Run& run) {
    if (run.run_type != Run::RT_Iteration) {
      return;
    }
    ++runs_;
    const std::string name = run.benchmark_name();
    const std::string& family = run.run_name.function_name;
    seen_.insert(family);
    if (run.error_occurred && run.error_message.rfind(kSkipPrefix, 0) == 0) {
      skips_.push_back(name + ": " + run.error_message.substr(std::string(kSkipPrefix).size()));
      return;
    }
    if (run.error_occurred) {
      problems_.push_back(name + ": self-check failed: " + run.error_message);
      return;
    }
    auto declared = declarations().find(family);
    if (declared == declarations().end()) {
      problems_.push_back(name + ": declares no figures (HVMM_BENCHMARK_FIGURES)");
      return;
    }
    for (const std::string& figure : declared->second) {
      auto counter = run.counters.find(figure);
      if (counter == run.counters.end()) {
        problems_.push_back(name + ": figure '" + figure + "' missing");
      } else if (!std::isfinite(counter->second.value)) {
        problems_.push_back(name + ": figure '" + figure + "' is not a finite number");
      }
    }
  }

  benchmark::BenchmarkReporter* display_;
  std::vector<std::string> problems_;
  std::vector<std::string> skips_;  // "name: reason" of runs that could not measure here
  std::set<std::string> seen_;
  unsigned runs_ = 0;
};

}  // namespace

bool declare_figures(const char* family, std::initializer_list<const char*> figures) {
  std::vector<std::string>& entry = declarations()[family];
  entry.assign(figures.begin(), figures.end());
  return true;
}

}  // namespace hvmm::bench

// True when the command line asks only for the list of benchmarks (nothing runs then).
bool lists_only(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--benchmark_list_tests" || arg == "--benchmark_list_tests=true" ||
        arg == "--benchmark_list_tests=1") {
      return true;
    }
  }
  return false;
}

// Parse the Google Benchmark flags, run, and exit 1 when the check found a problem.
int main(int argc, char** argv) {
  const bool listing = lists_only(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 1;
  }
  // The default display reporter honours --benchmark_format; it is owned by the library.
  hvmm::bench::CheckingReporter reporter(benchmark::CreateDefaultDisplayReporter());
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  if (listing) {
    return 0;
  }
  const std::string filter = benchmark::GetBenchmarkFilter();
  const bool whole_suite = filter.empty() || filter == "." || filter == "all";
  if (!reporter.verdict(whole_suite)) {
    return 1;
  }
  return reporter.all_skipped() ? hvmm::bench::kSkipExitStatus : 0;
}
