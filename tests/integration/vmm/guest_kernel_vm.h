// A VM running the bundled guest kernel in this process, driven through its control channel:
// the balloon integration tests and benchmarks use it. The Machine runs on a thread of its
// own; the caller asks the guest for work (workloads, memory statistics, shutdown), changes
// the balloon target, and reads this process's RssShmem (the guest RAM the host holds).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "hvmm/base/control_protocol.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/boot/input_file.h"
#include "hvmm/vmm/host/log_file.h"
#include "hvmm/vmm/host/process_memory.h"
#include "hvmm/vmm/machine/machine.h"

namespace hvmm::vmm::testing {

inline constexpr uint64_t kMiB = uint64_t{1} << 20;

// Why a guest-kernel VM cannot run in this build ("" when it can).
inline std::string guest_kernel_unavailable_reason() {
#ifdef HVMM_GUEST_KERNEL_ELF
  return "";
#else
  return "this build has no guest kernel (hvmm_guest_kernel)";
#endif
}

// GuestKernelVmOptions: the VM's RAM, its balloon options and the guest's command line.
struct GuestKernelVmOptions {
  uint64_t memory = 256 * kMiB;
  bool free_page_reporting = false;
  std::string cmdline;
  std::string console_log;  // the guest's console, for diagnostics ("" : stdout only)
  std::optional<DirtyTracking> dirty_tracking;  // MachineConfig::dirty_tracking
  uint32_t dirty_ring_entries = kDefaultDirtyRingEntries;
  std::optional<uint64_t> fault_around_max;  // none: the Machine's default window
  std::optional<ReclaimPolicy> reclaim;      // MachineConfig::reclaim (none: no reclaim)
};

// RssShmem of this process in bytes (0 when /proc cannot be read: a test then fails on it).
inline uint64_t rss_shmem() {
  auto memory = read_process_memory();
  return memory ? memory->rss_shmem : 0;
}

// RssSampler reads RssShmem every `period` on a thread of its own and keeps the peak, so a
// release that starts before the caller looks (free page reporting begins on its own,
// shortly after a workload frees its memory) is still measured from the real peak. It also
// notes when the drop from the peak first reached `threshold` bytes.
class RssSampler {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RssSampler(uint64_t threshold,
                      std::chrono::milliseconds period = std::chrono::milliseconds(5))
      : threshold_(threshold), thread_([this, period](std::stop_token stop) {
          while (!stop.stop_requested()) {
            sample();
            std::this_thread::sleep_for(period);
          }
        }) {}

  uint64_t peak() const { return peak_.load(); }
  uint64_t latest() const { return latest_.load(); }
  uint64_t released() const { return peak() - std::min(peak(), latest()); }
  // When the drop first reached the threshold (nullopt: not yet).
  std::optional<Clock::time_point> reached() const {
    const int64_t ns = reached_ns_.load();
    return ns == 0 ? std::nullopt : std::optional(Clock::time_point(std::chrono::nanoseconds(ns)));
  }
  // Wait until the drop reached the threshold or `deadline` passed; true when it did.
  bool wait(Clock::time_point deadline) const {
    while (!reached() && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return reached().has_value();
  }

 private:
  // One reading: the latest, the peak, and the first time the drop reached the threshold.
  void sample() {
    const uint64_t now = rss_shmem();
    latest_ = now;
    const uint64_t peak = std::max(peak_.load(), now);
    peak_ = peak;
    if (reached_ns_.load() == 0 && peak - now >= threshold_) {
      reached_ns_ =
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
              .count();
    }
  }

  const uint64_t threshold_;
  std::atomic<uint64_t> peak_{0};
  std::atomic<uint64_t> latest_{0};
  std::atomic<int64_t> reached_ns_{0};
  std::jthread thread_;  // last: it samples into the members above
};

// The guest kernel's workload pattern checksum for `pages` pages of `seed`, recomputed here
// (guest/kernel/README.md: word i of page p is h(p) + i, folded FNV-1a style in page order).
inline uint64_t pattern_checksum(uint64_t seed, uint64_t pages) {
  uint64_t checksum = 0xcbf29ce484222325ull;
  for (uint64_t p = 0; p < pages; ++p) {
    uint64_t z = seed + (p + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (uint64_t i = 0; i < 512; ++i) {
      checksum = (checksum ^ (z + i)) * 0x100000001b3ull;
    }
  }
  return checksum;
}

// GuestKernelVm is one running guest kernel; destroying it stops the VM if it still runs.
class GuestKernelVm {
 public:
  // Build the VM (balloon and control channel present) and start running it.
  static Result<std::unique_ptr<GuestKernelVm>> start(const GuestKernelVmOptions& options) {
#ifdef HVMM_GUEST_KERNEL_ELF
    MachineConfig config;
    config.memory_size = options.memory;
    auto kernel = read_file(HVMM_GUEST_KERNEL_ELF, "--kernel", config.memory_size);
    HVMM_TRY(kernel);
    config.kernel = std::move(*kernel);
    config.cmdline = options.cmdline;
    config.console_input = false;
    config.devices.free_page_reporting = options.free_page_reporting;
    config.devices.control_channel = true;  // the test drives the guest through it
    config.dirty_tracking = options.dirty_tracking;
    config.dirty_ring_entries = options.dirty_ring_entries;
    config.reclaim = options.reclaim;
    if (options.fault_around_max) {
      config.faults.fault_around_max = *options.fault_around_max;
    }
    if (!options.console_log.empty()) {
      auto log = open_log_file(options.console_log, "--console-log", LogOpenMode::kTruncate);
      HVMM_TRY(log);
      config.console_log = std::move(*log);
    }
    auto machine = Machine::create(std::move(config));
    HVMM_TRY(machine);
    auto vm = std::make_unique<GuestKernelVm>(std::move(*machine));
    vm->runner_ = std::thread([raw = vm.get()] { raw->status_ = raw->machine_->run(); });
    return vm;
#else
    (void)options;
    return make_error(ErrorCode::kUnavailable, "{}", guest_kernel_unavailable_reason());
#endif
  }
  // Take a built Machine (start() is the usual way; it also starts the runner).
  explicit GuestKernelVm(std::unique_ptr<Machine> machine) : machine_(std::move(machine)) {}
  ~GuestKernelVm() {
    if (runner_.joinable()) {
      machine_->request_stop(1, "the test ended without shutting the guest down");
      runner_.join();
    }
  }
  GuestKernelVm(const GuestKernelVm&) = delete;
  GuestKernelVm& operator=(const GuestKernelVm&) = delete;

  Machine& machine() {
    return *machine_;
  }

  // Send `request` and wait up to `timeout`; a status other than kOk is an error naming it.
  Result<control::ControlResponse> call(control::ControlRequest request,
                                        std::chrono::seconds timeout) {
    auto response =
        machine_->control_channel()->call(request, std::chrono::steady_clock::now() + timeout);
    HVMM_TRY(response);
    if (response->status != control::Status::kOk) {
      return make_error(ErrorCode::kInternal, "control op {} answered status {}",
                        static_cast<unsigned>(request.op), static_cast<int>(response->status));
    }
    return response;
  }
  // The guest answers a ping (it has booted and serves requests).
  Result<void> ping(std::chrono::seconds timeout) {
    control::ControlRequest request{};
    request.op = control::Op::kPing;
    HVMM_TRY(call(request, timeout));
    return Ok();
  }
  // A sequential pattern workload over `bytes` with `seed`, held or not.
  Result<control::WorkloadStartResult> touch(uint64_t bytes, uint64_t seed, bool hold,
                                             std::chrono::seconds timeout) {
    control::ControlRequest request{};
    request.op = control::Op::kWorkloadStart;
    request.args.workload_start = {control::WorkloadKind::kTouchSequential,
                                   hold ? control::kWorkloadHold : 0u, bytes, seed};
    auto response = call(request, timeout);
    HVMM_TRY(response);
    return response->result.workload_start;
  }
  // Check a held workload's pattern.
  Result<control::WorkloadVerifyResult> verify(uint32_t workload, std::chrono::seconds timeout) {
    control::ControlRequest request{};
    request.op = control::Op::kWorkloadVerify;
    request.args.workload_id = {workload};
    auto response = call(request, timeout);
    HVMM_TRY(response);
    return response->result.workload_verify;
  }
  // Free a held workload.
  Result<void> exit_workload(uint32_t workload, std::chrono::seconds timeout) {
    control::ControlRequest request{};
    request.op = control::Op::kWorkloadExit;
    request.args.workload_id = {workload};
    HVMM_TRY(call(request, timeout));
    return Ok();
  }
  // The guest's own memory figures.
  Result<control::MemStatsResult> mem_stats(std::chrono::seconds timeout) {
    control::ControlRequest request{};
    request.op = control::Op::kMemStats;
    auto response = call(request, timeout);
    HVMM_TRY(response);
    return response->result.mem_stats;
  }
  // The guest kernel reads (or, with `write`, writes `value` to) the 4 bytes at guest-physical
  // `ipa` through an uncached mapping (control op kProbe); the value read or written.
  Result<uint32_t> probe(uint64_t ipa, bool write, uint32_t value, std::chrono::seconds timeout) {
    control::ControlRequest request{};
    request.op = control::Op::kProbe;
    request.args.probe = {ipa, write ? control::kProbeWrite : 0u, value};
    auto response = call(request, timeout);
    HVMM_TRY(response);
    return response->result.probe.value;
  }
  // Ask the guest to exit with `status`, wait for the VM's end, return run()'s status.
  Result<int> shut_down(uint32_t status, std::chrono::seconds timeout) {
    control::ControlRequest request{};
    request.op = control::Op::kShutdown;
    request.args.shutdown = {status};
    auto answered = call(request, timeout);
    if (!answered) {
      machine_->request_stop(1, "the guest did not answer the shutdown request");
    }
    runner_.join();
    HVMM_TRY(answered);
    return status_;
  }
  // Set the balloon target and wait until the driver's `actual` reaches it.
  Result<void> balloon_to(uint64_t bytes, std::chrono::seconds timeout) {
    HVMM_TRY(machine_->set_balloon_target(bytes));
    return machine_->wait_for_balloon(std::chrono::steady_clock::now() + timeout);
  }

 private:
  std::unique_ptr<Machine> machine_;
  std::thread runner_;
  int status_ = -1;
};

}  // namespace hvmm::vmm::testing
