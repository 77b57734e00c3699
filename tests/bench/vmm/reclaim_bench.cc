// Reclaim under KVM, side by side in one run: the bundled guest kernel with 256 MiB runs in
// this process (guest_kernel_vm.h) under the policy "period=250ms,cold=4,rate=1G" (cold after
// 1 s, the first working-set bin's bound; the promotion budget is lifted so that reclaim keeps
// going after the re-read). One VM goes through four phases:
//
// 1. Resident (the engine paused): a held mix workload (hvmm/base/pattern_mix.h) of `mib`
//    MiB is written, then verified. Figures: first_touch_us, the fault handler's mean latency
//    of first touches (kind "missing", per fault), first_touch_pages (pages per such fault:
//    the fault-around window), and verify_resident_ms, the guest's own time for the verify.
// 2. Idle (the engine running) until reclaim settles (testing::wait_for_reclaim_to_settle).
//    Figures: touched_mib, rss_before_mib (VmRSS with the workload resident), rss_after_mib,
//    pool_mib (the pool's size classes), compression_ratio, incompressible_pages (refusals:
//    a kept page is offered again when the dirty log reports it), fragmentation, and
//    rss_ratio = (rss_after - VmRSS after boot) / touched (the must-show aim is <= 0.1 plus
//    the incompressible quarter, so <= 0.35 for this mix).
// 3. Re-read (the engine paused again, so nothing goes back behind the verify): the verify
//    brings every reclaimed page back. Figures: refault_us and refault_p99_us (the engine's
//    refault latency histogram over this verify, per refault: fault seen to pages restored;
//    p99 is the upper bound of its power-of-two bucket), refault_pages (pages per refault),
//    refault_ratio = refault_us / first_touch_us (per fault; aim <= 3), refault_page_ratio
//    (the same per page brought in), verify_reclaimed_ms and verify_ratio =
//    verify_reclaimed_ms / verify_resident_ms.
// 4. Working set (the engine running): once reclaim has settled again, the first `hot_mib`
//    MiB of the workload are rewritten for 8 s; from 4 s on, and from the epoch `cold` + 1
//    after the settling, the estimate is sampled every epoch. Figures: ws_known_mib (the hot
//    range), ws_estimate_mib (the mean over the samples of the pages in the bin "< 1 s", the
//    pages younger than the cold threshold: written or refaulted in the last 4 epochs),
//    ws_ratio = estimate / known (aim 0.9 - 1.1).
//
// Without /dev/kvm (or without the guest kernel in the build) the benchmark is skipped with its
// reason. Under nested KVM the figures are emulated: present, not comparable with hardware.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "guest_kernel_vm.h"
#include "hvmm/bench/figures.h"
#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/reclaim/reclaim_engine.h"
#include "hvmm/vmm/reclaim/reclaim_policy.h"
#include "reclaim_vm.h"

namespace hvmm::vmm {
namespace {

using Clock = std::chrono::steady_clock;
using testing::GuestKernelVm;
using testing::GuestKernelVmOptions;
using testing::kMiB;

constexpr uint64_t kGuestMemory = 256 * kMiB;
constexpr uint64_t kSeed = 29;
constexpr const char* kPolicy = "period=250ms,cold=4,rate=1G";
constexpr std::chrono::seconds kTimeout{150};
constexpr uint64_t kQuietEpochs = 6;
constexpr std::chrono::milliseconds kHotFor{8000};
constexpr std::chrono::milliseconds kHotWarmUp{4000};

// Why the benchmark cannot run here ("" when it can).
std::string unavailable_reason() {
  auto kvm = Kvm::open();
  if (!kvm) {
    return kvm.error().message;
  }
  return testing::guest_kernel_unavailable_reason();
}

double mib(uint64_t bytes) {
  return static_cast<double>(bytes) / static_cast<double>(kMiB);
}

// The samples of `later` not in `earlier` (the histogram of what happened in between).
LatencyHistogram histogram_since(const LatencyHistogram& earlier, const LatencyHistogram& later) {
  LatencyHistogram delta;
  for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i)
    delta.counts[i] = later.counts[i] - earlier.counts[i];
  delta.total_ns = later.total_ns - earlier.total_ns;
  delta.samples = later.samples - earlier.samples;
  return delta;
}

// Mean latency (µs) of the faults of `kind` counted between two snapshots (-1: none).
double mean_fault_us(const FaultCounts& earlier, const FaultCounts& later, FaultKind kind) {
  const auto k = static_cast<size_t>(kind);
  const uint64_t faults = later.of_kind(kind) - earlier.of_kind(kind);
  const uint64_t ns = later.latency_ns_total[k] - earlier.latency_ns_total[k];
  return faults == 0 ? -1 : static_cast<double>(ns) / static_cast<double>(faults) / 1000.0;
}

// One VM through the four phases above; a failed step fails the benchmark (a self-check).
class ReclaimRun {
 public:
  ReclaimRun(benchmark::State& state, uint64_t bytes, uint64_t hot_bytes)
      : state_(state), bytes_(bytes), hot_bytes_(hot_bytes), pages_(bytes / kPageSize) {}

  // Run every phase; false when one failed (the error is set on the state).
  bool run() { return boot() && resident() && idle() && reread() && working_set() && shut_down(); }

 private:
  bool fail(const std::string& what) {
    state_.SkipWithError(what.c_str());
    return false;
  }
  bool fail(const Error& error) { return fail(error.message); }

  // Boot with the policy and pause the engine for the resident phase.
  bool boot() {
    auto policy = parse_reclaim_policy(kPolicy);
    if (!policy)
      return fail(policy.error());
    policy->promotion_budget = kNoPromotionBudget;  // budget=off
    GuestKernelVmOptions options;
    options.memory = kGuestMemory;
    options.reclaim = *policy;
    auto vm = GuestKernelVm::start(options);
    if (!vm)
      return fail(vm.error());
    vm_ = std::move(*vm);
    if (auto pinged = vm_->ping(kTimeout); !pinged)
      return fail(pinged.error());
    engine_ = vm_->machine().reclaim_engine();
    if (engine_ == nullptr)
      return fail("the machine runs without a reclaim engine");
    engine_->stop();
    rss_boot_ = testing::vm_rss();
    return true;
  }

  // Write the workload and verify it, every page resident.
  bool resident() {
    const FaultCounts before = vm_->machine().fault_counts();
    control::ControlRequest request{};
    request.op = control::Op::kWorkloadStart;
    request.args.workload_start = {control::WorkloadKind::kTouchMix, control::kWorkloadHold, bytes_,
                                   kSeed};
    auto started = vm_->call(request, kTimeout);
    if (!started)
      return fail(started.error());
    workload_ = started->result.workload_start.workload;
    if (started->result.workload_start.checksum != testing::mix_checksum(kSeed, pages_))
      return fail("the workload's checksum is not the host's");
    const FaultCounts after = vm_->machine().fault_counts();
    first_touch_us_ = mean_fault_us(before, after, FaultKind::kMissing);
    if (first_touch_us_ <= 0)
      return fail("the workload's first touches never reached the fault handler");
    first_touch_pages_ = static_cast<double>(after.pages_filled - before.pages_filled) /
                         static_cast<double>(after.of_kind(FaultKind::kMissing) -
                                             before.of_kind(FaultKind::kMissing));
    state_.counters["first_touch_us"] = first_touch_us_;
    state_.counters["first_touch_pages"] = first_touch_pages_;
    auto verified = verify();
    if (!verified)
      return false;
    verify_resident_ms_ = *verified;
    state_.counters["verify_resident_ms"] = verify_resident_ms_;
    rss_touched_ = testing::vm_rss();
    return true;
  }

  // Let the engine reclaim until it settles.
  bool idle() {
    if (auto started = engine_->start(); !started)
      return fail(started.error());
    auto settled =
        testing::wait_for_reclaim_to_settle(vm_->machine(), kQuietEpochs, Clock::now() + kTimeout);
    if (!settled)
      return fail(settled.error());
    const uint64_t rss_after = testing::vm_rss();
    const ReclaimStoreStats& pool = settled->pool;
    state_.counters["touched_mib"] = mib(bytes_);
    state_.counters["rss_before_mib"] = mib(rss_touched_);
    state_.counters["rss_after_mib"] = mib(rss_after);
    state_.counters["rss_ratio"] = static_cast<double>(rss_after - std::min(rss_after, rss_boot_)) /
                                   static_cast<double>(bytes_);
    state_.counters["pool_mib"] = mib(pool.pool_bytes);
    state_.counters["compression_ratio"] = pool.compression_ratio();
    state_.counters["incompressible_pages"] =
        static_cast<double>(settled->stats.incompressible_pages);
    state_.counters["fragmentation"] = pool.fragmentation();
    state_.counters["reclaimed_pages"] = static_cast<double>(settled->stats.reclaimed_now);
    return true;
  }

  // Re-read everything with the engine paused: every reclaimed page refaults once.
  bool reread() {
    engine_->stop();
    const ReclaimFigures before = *vm_->machine().reclaim_figures();
    auto verified = verify();
    if (!verified)
      return false;
    const ReclaimFigures after = *vm_->machine().reclaim_figures();
    const LatencyHistogram refaults =
        histogram_since(before.stats.refault_latency, after.stats.refault_latency);
    if (refaults.samples == 0)
      return fail("the re-read refaulted nothing");
    const double refault_us = static_cast<double>(refaults.mean_ns()) / 1000.0;
    state_.counters["refault_us"] = refault_us;
    state_.counters["refault_p99_us"] =
        static_cast<double>(refaults.quantile_upper_ns(0.99)) / 1000.0;
    const double refault_pages = static_cast<double>(after.stats.refaults - before.stats.refaults) /
                                 static_cast<double>(refaults.samples);
    state_.counters["refault_pages"] = refault_pages;
    state_.counters["refault_ratio"] = refault_us / first_touch_us_;
    state_.counters["refault_page_ratio"] =
        (refault_us / refault_pages) / (first_touch_us_ / first_touch_pages_);
    state_.counters["verify_reclaimed_ms"] = *verified;
    state_.counters["verify_ratio"] = *verified / verify_resident_ms_;
    return true;
  }

  // Let the engine take back what the re-read brought in, then rewrite the hot range while
  // it runs; sample the estimate once every page's age tells the rewrite from the rest.
  bool working_set() {
    if (auto started = engine_->start(); !started)
      return fail(started.error());
    auto settled =
        testing::wait_for_reclaim_to_settle(vm_->machine(), kQuietEpochs, Clock::now() + kTimeout);
    if (!settled)
      return fail(settled.error());
    const uint64_t warm_epoch = settled->stats.epochs + engine_->policy().cold_epochs + 1;
    control::ControlRequest request{};
    request.op = control::Op::kWorkloadRewrite;
    request.args.workload_rewrite = {
        workload_, 0, 0, hot_bytes_ / kPageSize, static_cast<uint32_t>(kHotFor.count()), 0};
    const auto start = Clock::now();
    auto rewrite = std::async(std::launch::async, [&] { return vm_->call(request, kTimeout); });
    std::this_thread::sleep_until(start + kHotWarmUp);
    std::vector<uint64_t> samples;
    uint64_t last_epoch = 0;
    while (rewrite.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) {
      const WorkingSetEstimate estimate = vm_->machine().reclaim_figures()->working_set;
      if (estimate.epoch >= warm_epoch && estimate.epoch != last_epoch) {
        samples.push_back(estimate.pages[0]);
        last_epoch = estimate.epoch;
      }
    }
    auto rewritten = rewrite.get();
    if (!rewritten)
      return fail(rewritten.error());
    if (samples.empty())
      return fail("no epoch ran while the hot range was rewritten");
    double young = 0;
    for (uint64_t pages : samples)
      young += static_cast<double>(pages);
    young /= static_cast<double>(samples.size());
    state_.counters["ws_known_mib"] = mib(hot_bytes_);
    state_.counters["ws_estimate_mib"] = young * kPageSize / static_cast<double>(kMiB);
    state_.counters["ws_ratio"] = young * kPageSize / static_cast<double>(hot_bytes_);
    state_.counters["ws_samples"] = static_cast<double>(samples.size());
    return true;
  }

  // The verify's guest time in ms, after checking it found the host's checksum.
  std::optional<double> verify() {
    auto verified = vm_->verify(workload_, kTimeout);
    if (!verified) {
      fail(verified.error());
      return std::nullopt;
    }
    if (verified->mismatched_pages != 0 ||
        verified->checksum != testing::mix_checksum(kSeed, pages_)) {
      fail("the workload did not verify");
      return std::nullopt;
    }
    return static_cast<double>(verified->duration_ns) / 1e6;
  }

  bool shut_down() {
    auto status = vm_->shut_down(0, std::chrono::seconds(30));
    if (!status)
      return fail(status.error());
    return *status == 0 || fail("the guest exited " + std::to_string(*status));
  }

  benchmark::State& state_;
  const uint64_t bytes_;
  const uint64_t hot_bytes_;
  const uint64_t pages_;
  std::unique_ptr<GuestKernelVm> vm_;
  ReclaimEngine* engine_ = nullptr;
  uint32_t workload_ = 0;
  uint64_t rss_boot_ = 0;
  uint64_t rss_touched_ = 0;
  double first_touch_us_ = 0;
  double first_touch_pages_ = 0;
  double verify_resident_ms_ = 0;
};

// The four phases for a workload of range(0) MiB with a hot range of range(1) MiB.
void BM_ReclaimGuest(benchmark::State& state) {
  const std::string why = unavailable_reason();
  for (auto _ : state) {
    if (!why.empty()) {
      state.SkipWithError((bench::kSkipPrefix + why).c_str());
      break;
    }
    ReclaimRun run(state, static_cast<uint64_t>(state.range(0)) * kMiB,
                   static_cast<uint64_t>(state.range(1)) * kMiB);
    if (!run.run())
      break;
  }
}
HVMM_BENCHMARK_FIGURES(BM_ReclaimGuest, "first_touch_us", "first_touch_pages", "refault_us",
                       "refault_p99_us", "refault_pages", "refault_ratio", "refault_page_ratio",
                       "verify_resident_ms", "verify_reclaimed_ms", "verify_ratio", "touched_mib",
                       "rss_before_mib", "rss_after_mib", "rss_ratio", "pool_mib",
                       "compression_ratio", "incompressible_pages", "fragmentation", "ws_known_mib",
                       "ws_estimate_mib", "ws_ratio");
// The must-show sizes (192 MiB touched, a 32 MiB hot range) and a short one for smoke runs.
BENCHMARK(BM_ReclaimGuest)
    ->ArgNames({"mib", "hot_mib"})
    ->Args({192, 32})
    ->Args({32, 8})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace hvmm::vmm
