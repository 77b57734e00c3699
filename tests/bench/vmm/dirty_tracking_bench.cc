// KVM dirty tracking, the bitmap (DirtyTracking::kLog) against the ring (kRing), side by side
// in one run, with a VM without tracking as the reference for the guest's own time.
//
// Each kind boots the bundled guest kernel in this process (guest_kernel_vm.h) with
// --memory MiB (default 256), touches 60% of its RAM once (so later workloads find their
// pages backed and measure tracking, not first touches) and drains what boot wrote. Then, for
// dirty sets of about 1%, 10% and 50% of RAM, --epochs epochs (default 5) each: a held
// kTouchSequential workload writes k pages (WorkloadStart over the control channel), the
// source is harvested (the figure: time inside harvest(), ioctls included, and the pages it
// reported) and the workload exits. The guest's workload time (the workload result's
// duration) with tracking is compared against the same without tracking: what write-protect
// faults (bitmap) or ring pushes and ring-full exits (ring) cost the guest. Medians.
//
// Structure to read the figures with: a bitmap harvest copies and scans one bit per page of
// RAM whatever was written (cost grows with RAM); a ring harvest reads one 16-byte entry per
// page written (cost grows with the dirty set), and a ring that fills between harvests costs
// its vCPU an exit (ring_full/epoch).
//
// Usage: vmm_dirty_tracking_bench [--memory MIB] [--epochs N]. Exit status: 0 every figure
// measured, 1 a VM failed or a figure is missing, 77 without /dev/kvm or the guest kernel
// ("skip: reason"). Under nested KVM the figures are emulated: present, not meaningful.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "guest_kernel_vm.h"

namespace hvmm::vmm {
namespace {

using Clock = std::chrono::steady_clock;
using testing::GuestKernelVm;
using testing::GuestKernelVmOptions;
using testing::kMiB;

constexpr int kSkip = 77;
constexpr double kDirtyFractions[] = {0.01, 0.10, 0.50};
constexpr double kWarmUpFraction = 0.60;
constexpr std::chrono::seconds kBootTimeout{120};
constexpr std::chrono::seconds kWorkloadTimeout{300};

// One dirty set's figures for one kind, medians over the epochs.
struct SetFigures {
  double harvest_us = 0;
  double reported_pages = 0;
  double workload_ms = 0;
  double ring_full_per_epoch = 0;
};

// One kind's run: a figure per dirty set, or why it could not run.
struct KindRun {
  std::string label;
  std::vector<SetFigures> sets;
  std::string error;  // "" when measured
  bool skipped = false;
};

// The median of `values` (0 when empty).
double median(std::vector<double> values) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

// Harvest `source` once: its wall time in µs and the pages it reported.
Result<std::pair<double, uint64_t>> timed_harvest(DirtySource& source) {
  uint64_t pages = 0;
  const auto start = Clock::now();
  auto harvested = source.harvest([&](IpaRange run) { pages += run.size / kPageSize; });
  const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  HVMM_TRY(harvested);
  return std::pair{us, pages};
}

// The epochs of one dirty set of `pages` pages on a booted VM.
Result<SetFigures> measure_set(GuestKernelVm& vm, DirtySource* source, uint64_t pages, int epochs,
                               uint64_t seed) {
  std::vector<double> harvest_us;
  std::vector<double> reported;
  std::vector<double> workload_ms;
  const uint64_t full_before = source != nullptr ? source->stats().ring_full_exits : 0;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    auto touched =
        vm.touch(pages * kPageSize, seed + static_cast<uint64_t>(epoch), true, kWorkloadTimeout);
    HVMM_TRY(touched);
    workload_ms.push_back(static_cast<double>(touched->duration_ns) / 1e6);
    if (source != nullptr) {
      auto harvested = timed_harvest(*source);
      HVMM_TRY(harvested);
      harvest_us.push_back(harvested->first);
      reported.push_back(static_cast<double>(harvested->second));
    }
    HVMM_TRY(vm.exit_workload(touched->workload, kWorkloadTimeout));
  }
  SetFigures figures;
  figures.harvest_us = median(harvest_us);
  figures.reported_pages = median(reported);
  figures.workload_ms = median(workload_ms);
  if (source != nullptr) {
    figures.ring_full_per_epoch =
        static_cast<double>(source->stats().ring_full_exits - full_before) / epochs;
  }
  return figures;
}

// Boot a VM with `tracking`, warm it up, drain boot's writes, then measure every dirty set.
Result<std::vector<SetFigures>> measure_kind(std::optional<DirtyTracking> tracking, uint64_t memory,
                                             int epochs) {
  GuestKernelVmOptions options;
  options.memory = memory;
  options.dirty_tracking = tracking;
  auto vm = GuestKernelVm::start(options);
  HVMM_TRY(vm);
  HVMM_TRY((*vm)->ping(kBootTimeout));
  const uint64_t ram_pages = memory / kPageSize;
  HVMM_TRY((*vm)->touch(static_cast<uint64_t>(kWarmUpFraction * static_cast<double>(memory)), 1,
                        false, kWorkloadTimeout));
  DirtySource* source = (*vm)->machine().dirty_source();
  if (source != nullptr) {
    HVMM_TRY(timed_harvest(*source));
    HVMM_TRY(timed_harvest(*source));
  }
  std::vector<SetFigures> sets;
  for (double fraction : kDirtyFractions) {
    const uint64_t pages =
        std::max<uint64_t>(1, static_cast<uint64_t>(fraction * static_cast<double>(ram_pages)));
    auto figures = measure_set(**vm, source, pages, epochs, 100);
    HVMM_TRY(figures);
    sets.push_back(*figures);
  }
  auto status = (*vm)->shut_down(0, kWorkloadTimeout);
  HVMM_TRY(status);
  if (*status != 0) {
    return make_error(ErrorCode::kInternal, "the VM ended with status {}", *status);
  }
  return sets;
}

// Why a kind cannot run on this KVM ("" when it can).
std::string capability_missing(const Kvm& kvm, DirtyTracking tracking) {
  auto vm = KvmVm::create(kvm);
  if (!vm) {
    return vm.error().message;
  }
  if (tracking == DirtyTracking::kLog) {
    return vm->check_extension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0
               ? ""
               : "KVM lacks KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2";
  }
  return vm->check_extension(KVM_CAP_DIRTY_LOG_RING_ACQ_REL) > 0 ||
                 vm->check_extension(KVM_CAP_DIRTY_LOG_RING) > 0
             ? ""
             : "KVM lacks KVM_CAP_DIRTY_LOG_RING_ACQ_REL and KVM_CAP_DIRTY_LOG_RING";
}

// "a/b" or "-" when either is missing.
std::string ratio(double a, double b) {
  return a > 0 && b > 0 ? fmt::format("{:.2f}", a / b) : "-";
}

// The table: one line per dirty set, the kinds side by side, then the ratios.
void print_table(const std::vector<KindRun>& runs, uint64_t memory, int epochs) {
  const KindRun& none = runs[0];
  const KindRun& log = runs[1];
  const KindRun& ring = runs[2];
  fmt::print(
      "dirty tracking: {} MiB guest, {} epoch(s) per dirty set, medians; harvest = time "
      "in harvest(), ioctls included\n",
      memory / kMiB, epochs);
  for (const KindRun& run : runs) {
    if (!run.error.empty()) {
      fmt::print("{}: {}: {}\n", run.label, run.skipped ? "skip" : "FAILED", run.error);
    }
  }
  fmt::print(
      "{:>5} {:>7} | {:>12} {:>12} {:>8} | {:>8} {:>8} | {:>9} {:>9} {:>9} | {:>8} "
      "{:>9} {:>10}\n",
      "set", "pages", "log_harv_us", "ring_harv_us", "ring/log", "log_rep", "ring_rep", "none_ms",
      "log_ms", "ring_ms", "log/none", "ring/none", "ring_full");
  const uint64_t ram_pages = memory / kPageSize;
  for (size_t i = 0; i < std::size(kDirtyFractions); ++i) {
    auto at = [i](const KindRun& run) {
      return run.error.empty() && i < run.sets.size() ? run.sets[i] : SetFigures{};
    };
    const SetFigures n = at(none), l = at(log), r = at(ring);
    const auto pages = static_cast<uint64_t>(kDirtyFractions[i] * static_cast<double>(ram_pages));
    fmt::print(
        "{:>4.0f}% {:>7} | {:>12.1f} {:>12.1f} {:>8} | {:>8.0f} {:>8.0f} | {:>9.2f} "
        "{:>9.2f} {:>9.2f} | {:>8} {:>9} {:>10.1f}\n",
        kDirtyFractions[i] * 100, pages, l.harvest_us, r.harvest_us,
        ratio(r.harvest_us, l.harvest_us), l.reported_pages, r.reported_pages, n.workload_ms,
        l.workload_ms, r.workload_ms, ratio(l.workload_ms, n.workload_ms),
        ratio(r.workload_ms, n.workload_ms), r.ring_full_per_epoch);
  }
  fmt::print(
      "ratios: ring/log harvest < 1 favours the ring's harvest; log/none and ring/none "
      "are the guest's workload time with tracking over without (1 = free)\n");
}

}  // namespace
}  // namespace hvmm::vmm

// Parse the options, skip without KVM, run the three kinds, print the table.
int main(int argc, char** argv) {
  using namespace hvmm::vmm;
  uint64_t memory_mib = 256;
  int epochs = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--memory") == 0) {
      memory_mib = static_cast<uint64_t>(std::max(16, std::atoi(argv[i + 1])));
    } else if (std::strcmp(argv[i], "--epochs") == 0) {
      epochs = std::max(1, std::atoi(argv[i + 1]));
    }
  }
  auto kvm = Kvm::open();
  if (!kvm) {
    fmt::print("skip: {}\n", kvm.error().message);
    return kSkip;
  }
  if (std::string why = testing::guest_kernel_unavailable_reason(); !why.empty()) {
    fmt::print("skip: {}\n", why);
    return kSkip;
  }
  const uint64_t memory = memory_mib * kMiB;
  std::vector<KindRun> runs = {
      {"none", {}, "", false}, {"log", {}, "", false}, {"ring", {}, "", false}};
  const std::optional<DirtyTracking> kinds[] = {std::nullopt, DirtyTracking::kLog,
                                                DirtyTracking::kRing};
  bool failed = false;
  for (size_t k = 0; k < runs.size(); ++k) {
    if (kinds[k]) {
      if (std::string why = capability_missing(*kvm, *kinds[k]); !why.empty()) {
        runs[k].error = why;
        runs[k].skipped = true;
        continue;
      }
    }
    auto sets = measure_kind(kinds[k], memory, epochs);
    if (sets) {
      runs[k].sets = std::move(*sets);
    } else {
      runs[k].error = sets.error().message;
      failed = true;
    }
  }
  print_table(runs, memory, epochs);
  return failed ? 1 : 0;
}
