// Balloon benchmarks under KVM: the bundled guest kernel with 256 MiB runs in this process
// (guest_kernel_vm.h), a 192 MiB ring-3 workload touches its memory and exits, then
//
// BM_BalloonInflate: the balloon target goes to 128 MiB. Figures: total_ms (target set to
//   the driver's `actual` reached), guest_driver_ms (the guest's own time for that target,
//   from its console line "virtio-balloon: target N pages, actual N (T us)"), vmm_release_ms
//   (time inside the backend: the map changes and their punches), raw_punch_ms (a plain
//   memfd with the same runs populated, punched run by run with fallocate in this run: the
//   reference), ratio = vmm_release_ms / raw_punch_ms (aim <= 1.5), and rss_released_mib
//   (RssShmem before the target minus after; aim >= 120).
// BM_FreePageReporting: no balloon target, free page reporting on with a 100 ms delay.
//   Figures: release_ms (from the workload's answer until RssShmem, sampled every 5 ms from
//   before the workload, is 120 MiB below its peak; 0 when that came first; at most 60 s),
//   rss_released_mib (peak minus RssShmem once reporting has settled), vmm_report_ms (time inside
//   the backend for the reports) and released_ratio = released / touched.
//
// Without /dev/kvm (or without the guest kernel in the build) each benchmark is skipped with
// its reason. Under nested KVM the figures are a smoke test: present, not meaningful.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "guest_kernel_vm.h"
#include "hvmm/bench/figures.h"
#include "hvmm/vmm/host/unique_fd.h"
#include "hvmm/vmm/kvm/kvm.h"

namespace hvmm::vmm {
namespace {

using Clock = std::chrono::steady_clock;
using testing::GuestKernelVm;
using testing::GuestKernelVmOptions;
using testing::kMiB;
using testing::rss_shmem;

constexpr uint64_t kGuestMemory = 256 * kMiB;
constexpr uint64_t kWorkloadBytes = 192 * kMiB;
constexpr uint64_t kInflateBytes = 128 * kMiB;
constexpr std::chrono::seconds kTimeout{120};

// Milliseconds between two instants.
double ms_between(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double, std::milli>(end - start).count();
}

// Why the benchmarks cannot run here ("" when they can).
std::string unavailable_reason() {
  auto kvm = Kvm::open();
  if (!kvm) {
    return kvm.error().message;
  }
  return testing::guest_kernel_unavailable_reason();
}

// A file in /tmp for the guest's console, removed with the object.
struct ConsoleFile {
  ConsoleFile() : path("/tmp/hvmm-balloon-bench-" + std::to_string(::getpid()) + ".console") {}
  ~ConsoleFile() { ::unlink(path.c_str()); }
  std::string text() const {
    std::string out;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    char buffer[4096];
    for (ssize_t n; fd.valid() && (n = ::read(fd.get(), buffer, sizeof(buffer))) > 0;) {
      out.append(buffer, static_cast<size_t>(n));
    }
    return out;
  }
  std::string path;
};

// The guest's time for reaching `pages`, from its last "target N pages, actual N (T us)"
// line; -1 when there is none.
double guest_inflate_ms(const std::string& console, uint64_t pages) {
  const std::string line = "virtio-balloon: target " + std::to_string(pages) + " pages, actual " +
                           std::to_string(pages) + " (";
  const size_t at = console.rfind(line);
  if (at == std::string::npos) {
    return -1;
  }
  return std::stod(console.substr(at + line.size())) / 1000.0;
}

// Boot the guest and run one 192 MiB workload to its end; an error skips the benchmark.
std::unique_ptr<GuestKernelVm> boot_and_touch(benchmark::State& state,
                                              const GuestKernelVmOptions& options) {
  auto vm = GuestKernelVm::start(options);
  if (!vm) {
    state.SkipWithError(vm.error().message.c_str());
    return nullptr;
  }
  auto pinged = (*vm)->ping(kTimeout);
  auto touched = pinged ? (*vm)->touch(kWorkloadBytes, 1, false, kTimeout)
                        : Result<control::WorkloadStartResult>(pinged.error());
  if (!touched) {
    state.SkipWithError(touched.error().message.c_str());
    return nullptr;
  }
  return std::move(*vm);
}

// Punch `runs` (IPA = memfd offset: one RAM region from 0) out of a plain, populated memfd
// one fallocate per run, as the backend's realization does; the time in ms, -1 on failure.
double raw_punch_ms(const std::vector<IpaRange>& runs) {
  UniqueFd fd(::memfd_create("hvmm-balloon-bench-raw", MFD_CLOEXEC));
  if (!fd.valid() || ::ftruncate(fd.get(), static_cast<off_t>(kGuestMemory)) != 0) {
    return -1;
  }
  void* at = ::mmap(nullptr, kGuestMemory, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (at == MAP_FAILED) {
    return -1;
  }
  Mapping mapping(at, kGuestMemory);
  for (const IpaRange& run : runs) {
    for (uint64_t page = run.start.value(); page < run.end().value(); page += kPageSize) {
      mapping.data()[page] = 1;
    }
  }
  const auto start = Clock::now();
  for (const IpaRange& run : runs) {
    if (::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(run.start.value()), static_cast<off_t>(run.size)) != 0) {
      return -1;
    }
  }
  return ms_between(start, Clock::now());
}

// Wait until free page reporting has settled: the backend has finished every range the
// device took, and no new report came for 1.5 s (the guest reports in cycles), at most 10 s.
void settle_reports(Machine& machine) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  auto last_change = Clock::now();
  uint64_t seen = 0;
  while (Clock::now() < deadline && Clock::now() < last_change + std::chrono::milliseconds(1500)) {
    const uint64_t device = machine.balloon_statistics()->reported_pages;
    const uint64_t backend = machine.devices().balloon_backend()->stats().reported_pages;
    if (device != seen || backend < device) {
      seen = device;
      last_change = Clock::now();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Inflate 128 MiB after a 192 MiB workload exited, and the raw punch of the same runs.
void BM_BalloonInflate(benchmark::State& state) {
  const std::string why = unavailable_reason();
  for (auto _ : state) {
    if (!why.empty()) {
      state.SkipWithError((bench::kSkipPrefix + why).c_str());
      break;
    }
    ConsoleFile console;
    GuestKernelVmOptions options;
    options.memory = kGuestMemory;
    options.console_log = console.path;
    auto vm = boot_and_touch(state, options);
    if (!vm) {
      break;
    }
    GuestPhysicalBalloonBackend& backend = *vm->machine().devices().balloon_backend();
    backend.record_inflated_runs(true);
    const uint64_t before = rss_shmem();
    const auto start = Clock::now();
    auto inflated = vm->balloon_to(kInflateBytes, kTimeout);
    const auto end = Clock::now();
    const uint64_t after = rss_shmem();
    if (!inflated) {
      state.SkipWithError(inflated.error().message.c_str());
      break;
    }
    const BalloonBackendStats stats = backend.stats();
    const double raw = raw_punch_ms(backend.inflated_runs());
    const double vmm = static_cast<double>(stats.inflate_ns) / 1e6;
    state.counters["total_ms"] = ms_between(start, end);
    state.counters["guest_driver_ms"] = guest_inflate_ms(console.text(), kInflateBytes / kPageSize);
    state.counters["vmm_release_ms"] = vmm;
    state.counters["raw_punch_ms"] = raw;
    state.counters["ratio"] = raw > 0 ? vmm / raw : -1;
    state.counters["rss_released_mib"] =
        static_cast<double>(before - std::min(before, after)) / static_cast<double>(kMiB);
    state.counters["runs"] = static_cast<double>(stats.runs);
    [[maybe_unused]] auto ended = vm->shut_down(0, kTimeout);
  }
}
HVMM_BENCHMARK_FIGURES(BM_BalloonInflate, "total_ms", "guest_driver_ms", "vmm_release_ms",
                       "raw_punch_ms", "ratio", "rss_released_mib");
BENCHMARK(BM_BalloonInflate)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// Free page reporting of a 192 MiB workload that exited: how much, how fast.
void BM_FreePageReporting(benchmark::State& state) {
  const std::string why = unavailable_reason();
  for (auto _ : state) {
    if (!why.empty()) {
      state.SkipWithError((bench::kSkipPrefix + why).c_str());
      break;
    }
    GuestKernelVmOptions options;
    options.memory = kGuestMemory;
    options.free_page_reporting = true;
    options.cmdline = "page_reporting.delay_ms=100";
    testing::RssSampler rss(120 * kMiB);
    auto vm = boot_and_touch(state, options);
    if (!vm) {
      break;
    }
    const auto start = Clock::now();
    rss.wait(start + kTimeout / 2);
    // The reports may start before the workload's answer arrives: then the time is 0.
    const auto reached = rss.reached().value_or(Clock::now());
    const double release_ms = std::max(0.0, ms_between(start, reached));
    settle_reports(vm->machine());
    const double released = static_cast<double>(rss.released());
    state.counters["release_ms"] = release_ms;
    state.counters["rss_released_mib"] = released / static_cast<double>(kMiB);
    state.counters["vmm_report_ms"] =
        static_cast<double>(vm->machine().devices().balloon_backend()->stats().report_ns) / 1e6;
    state.counters["released_ratio"] = released / static_cast<double>(kWorkloadBytes);
    [[maybe_unused]] auto ended = vm->shut_down(0, kTimeout);
  }
}
HVMM_BENCHMARK_FIGURES(BM_FreePageReporting, "rss_released_mib", "release_ms", "vmm_report_ms",
                       "released_ratio");
BENCHMARK(BM_FreePageReporting)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace hvmm::vmm
