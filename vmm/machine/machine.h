// Machine: one VM, from configuration to exit status.
//
// create() builds the guest-physical space (Stage2Map + memfd, realized as memslots), the
// KVM VM with its in-kernel irqchip, loads the PVH kernel and boot data, and creates the
// vCPUs (the boot vCPU in the PVH entry state, APs parked until the guest's INIT/SIPI).
// run() starts one thread per vCPU and returns when the guest writes its status to port
// 0xf4, a vCPU fails, or SIGINT/SIGTERM arrives. While running, the calling thread serves
// the console input (stdin, when a terminal) and signals. When the VMM, not the guest, ended
// the VM, run() prints "hvmm: VM ended by the VMM: REASON (exit status N)" as the last line
// on stderr (vm_stop.h); a guest's own port-0xf4 exit prints nothing.
//
// With config.faults.userfaultfd (the default) guest RAM is registered with a FaultHandler
// before any vCPU runs (one FaultRegion per RAM region, on the memfd's primary mapping): the
// first touch of a page and the refault of a ballooned or reported one are resolved from the
// page's state in the map (GuestPhysical is the FaultResolver). A FaultWatchdog stops the VM
// with status 125 when the handler is stuck or dead. A host without userfaultfd fails
// create() (status 121) naming what is missing; `--userfaultfd off` leaves first touches to
// the host kernel instead. At exit, run() writes the --stats file (memory_report.h).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "hvmm/base/result.h"
#include "hvmm/vmm/boot/elf_loader.h"
#include "hvmm/vmm/devices/serial/console.h"
#include "hvmm/vmm/devices/serial/uart.h"
#include "hvmm/vmm/fault/fault_counts.h"
#include "hvmm/vmm/fault/fault_handler.h"
#include "hvmm/vmm/fault/fault_log.h"
#include "hvmm/vmm/fault/fault_watchdog.h"
#include "hvmm/vmm/fault/vcpu_registry.h"
#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/kvm/kvm_memslots.h"
#include "hvmm/vmm/kvm/vcpu.h"
#include "hvmm/vmm/kvm/vcpu_gate.h"
#include "hvmm/vmm/machine/kvm_mmu_stats.h"
#include "hvmm/vmm/machine/machine_config.h"
#include "hvmm/vmm/machine/machine_devices.h"
#include "hvmm/vmm/machine/machine_reclaim.h"
#include "hvmm/vmm/machine/memory_controls.h"
#include "hvmm/vmm/machine/vm_stop.h"
#include "hvmm/vmm/memory/guest_physical.h"
#include "hvmm/vmm/reclaim/dirty/dirty_accumulator.h"
#include "hvmm/vmm/reclaim/dirty/dirty_log.h"
#include "hvmm/vmm/reclaim/dirty/dirty_ring.h"

namespace hvmm::vmm {

// What a prepared Machine (warm start) is built with ahead of its MachineConfig: the part of
// a VM that depends neither on the kernel nor on the devices.
struct PrepareConfig {
  uint64_t memory_size = uint64_t{128} << 20;
  unsigned vcpus = 1;
};

class Machine final : public VcpuHost {
 public:
  // Open /dev/kvm and build the VM; the Machine takes the config's log files.
  static Result<std::unique_ptr<Machine>> create(MachineConfig config);
  // Build the VM on an already opened /dev/kvm.
  static Result<std::unique_ptr<Machine>> create(MachineConfig config, Kvm kvm);
  // Warm start, step 1: on an opened /dev/kvm, create the KVM VM (TSS, identity map, in-kernel
  // irqchip), guest RAM (memfd, stage-2 map) with its memslots (KVM's first
  // KVM_SET_USER_MEMORY_REGION and its SRCU wait are paid here) and the vCPUs (fds and
  // CPUID). No memslot has dirty logging. Nothing else exists until launch().
  static Result<std::unique_ptr<Machine>> prepare(const PrepareConfig& prepare, Kvm kvm);
  // Warm start, step 2: build the rest of what create() builds (logs, console, fault
  // handling, devices, kernel and boot data, vCPU entry state, stats, reclaim) for `config`,
  // whose memory_size and vcpus must be the prepared ones and which must need no dirty
  // tracking (kFailedPrecondition naming the field, nothing changed). Call once.
  Result<void> launch(MachineConfig config);
  // Between prepare() and launch().
  bool prepared_only() const { return prepared_only_; }

  Machine(const MachineConfig& config, Kvm kvm, KvmVm vm);
  ~Machine() override;

  // When the first vCPU first entered the guest (CLOCK_REALTIME, ns); 0 before. `observer`
  // (set before run()) is called with it on that vCPU's thread.
  uint64_t first_run_unix_ns() const { return first_run_unix_ns_.load(); }
  void on_first_run(std::function<void(uint64_t unix_ns)> observer) {
    first_run_observer_ = std::move(observer);
  }

  // Run the VM to its end and return the exit status (see exit_status.h).
  int run();
  // The VMM stops the VM with `status` because of `reason`; the first request (this, a
  // guest exit or a vCPU failure) wins. Thread-safe.
  void request_stop(int status, std::string reason);
  // Why the VM ended ("guest exited with status 0", or the VMM's reason); "" while it runs.
  std::string end_reason() const { return stop_.reason(); }

  GuestPhysical& physical() { return *physical_; }
  FaultLog& fault_log() { return *fault_log_; }
  MachineDevices& devices() { return *devices_; }
  // The command line the guest got: the user's plus the virtio-mmio announcements.
  const std::string& guest_cmdline() const { return guest_cmdline_; }

  // Ask the balloon to hold `bytes` (rounded down to pages) while the guest runs: the
  // config changes and the driver gets a config-change interrupt. Thread-safe.
  Result<void> set_balloon_target(uint64_t bytes);
  // Wait until the driver's `actual` reaches the target, or fail at `deadline`.
  Result<void> wait_for_balloon(std::chrono::steady_clock::time_point deadline);
  // Target, actual, pages inflated/deflated/reported, refused PFNs, last guest stats;
  // std::nullopt without a balloon.
  std::optional<BalloonStatistics> balloon_statistics() const;
  // Ask the guest for fresh balloon stats now (they arrive asynchronously).
  void request_balloon_stats();
  // Every fault counted so far by kind and resolution: the userfaultfd handler's plus the
  // MMIO exits the Machine answered. Thread-safe.
  FaultCounts fault_counts() const;
  // The userfaultfd handler, or nullptr with --userfaultfd off.
  FaultHandler* fault_handler() { return fault_handler_.get(); }
  // The control channel, or nullptr when the VM has none. Thread-safe to call().
  ControlChannel* control_channel() { return devices_->control(); }
  // KVM's record of the pages the guest wrote (config.dirty_tracking), or nullptr when off.
  // One thread at a time may harvest it.
  DirtySource* dirty_source();
  // The reclaim figures (config.reclaim), or nothing when the VM has no reclaim.
  std::optional<ReclaimFigures> reclaim_figures() const;
  // The reclaim engine, or nullptr when the VM has no reclaim.
  ReclaimEngine* reclaim_engine() { return reclaim_ ? &reclaim_->engine() : nullptr; }

  // Memory controls (memory_controls.h, machine_controls.cc). Thread-safe while running and
  // before run(); the ones that reach KVM's translations (shootdown_stage2, invalidate) fail
  // with kFailedPrecondition once the VM has stopped. Ranges must be page aligned, not empty,
  // not overflowing and inside the IPA space: otherwise kInvalidArgument (kOutOfRange for
  // the IPA space) with a message starting "range: ".
  //
  // KVM's MMU figures (available = false without binary stats).
  KvmMmuStats kvm_mmu_stats() const;
  // The VMM's stage-2 TLB counters.
  Stage2TlbFigures stage2_tlb_figures() const;
  // Drop the stage-2 TLB entries of (VMID, range) and KVM's translations of the range's RAM
  // without losing contents; the guest's next access builds a fresh translation (KVM counts
  // it in pf_fixed). The mechanism, and why, is in vmm/memory/README.md ("Stage-2
  // shootdown"): the memslots' mapping loses its page-table entries (madvise(MADV_DONTNEED)
  // of the shmem mapping), the host's MMU notifier makes KVM zap its own entries, the pages
  // stay in the memfd. Waits for a reclaim epoch in progress (a window must not meet it). It
  // is not an MMU-notifier invalidation: subscribers are not told (invalidate() is that).
  Result<Stage2Shootdown> shootdown_stage2(IpaRange range);
  // Drop every stage-2 TLB entry (the daemon's VMID rollover).
  void flush_stage2_tlb_all();
  // Run invalidate_range_start/end over `range` with `reason` (subscribers drop what they
  // cache; the stage-2 TLB and KVM drop their translations of it, as shootdown_stage2 does,
  // inside the bracket); the map and the contents are unchanged.
  Result<Invalidation> invalidate(IpaRange range, stage2::ChangeReason reason);
  // test_young (clear false) or clear_young (clear true) over `range`, in the map's access
  // flags (set when a page is mapped and by VMM accesses; the guest's own accesses set
  // KVM's flags, not the map's) and the notifier subscribers.
  Result<AgeResult> age(IpaRange range, bool clear);
  // The pages written since the previous call that covered them, within `range`, coalesced.
  // With reclaim, the engine harvests KVM's dirty log: this harvests it now through the
  // engine (between epochs) and takes what it published; without reclaim it harvests the log
  // itself. The first call reports every page KVM started out marking dirty (all of RAM with
  // KVM_DIRTY_LOG_INITIALLY_SET). Fails (kFailedPrecondition) when the VM has no dirty
  // tracking.
  Result<DirtyLogSnapshot> take_dirty_log(IpaRange range);
  // Replace the reclaim policy; it takes effect at the next epoch. Fails (kFailedPrecondition)
  // when the VM has no reclaim, and (kInvalidArgument, naming the key) when it changes what is
  // fixed while the VM runs: the pool's codec, limit and keep threshold, the dirty tracking
  // (reclaim_policy.h: check_policy_change; parse_reclaim_policy(text, base) keeps them).
  Result<void> set_reclaim_policy(const ReclaimPolicy& policy);
  // Run `epochs` (1..100) reclaim epochs now, serialized with the engine's own. Fails
  // (kFailedPrecondition) when the VM has no reclaim or has stopped; an epoch that reports
  // data loss stops the VM, as the engine's own epochs do, and fails the call (kDataLoss).
  Result<ReclaimRun> reclaim_now(unsigned epochs);

  void port_io(unsigned vcpu, uint16_t port, bool write, std::span<uint8_t> data) override;
  void mmio(unsigned vcpu, Ipa ipa, bool write, std::span<uint8_t> data,
            std::chrono::steady_clock::time_point exit_time) override;
  void vcpu_failed(unsigned vcpu, int status, const std::string& what,
                   const std::string& dump) override;
  void vcpu_thread_started(unsigned vcpu, pid_t tid) override;
  void vcpu_thread_stopped(unsigned vcpu, pid_t tid) override;
  bool dirty_ring_full(unsigned vcpu) override;
  void vcpu_first_entry(unsigned vcpu) override;

 private:
  Result<void> build(MachineConfig& config);
  // build()'s steps shared with prepare() and launch().
  Result<void> create_stop_event();
  void create_front(MachineConfig& config);
  Result<void> prepare_memory_and_vcpus(const PrepareConfig& prepare);
  Result<void> check_prepared_matches(const MachineConfig& config) const;
  Result<void> finish_build(MachineConfig& config);
  Result<void> load_and_create_vcpus(const MachineConfig& config);
  Result<Ipa> load(const MachineConfig& config, const PvhKernel& kernel);
  Result<void> create_vcpus(const MachineConfig& config, Ipa entry, Ipa start_info);
  // The DirtySource of config.dirty_tracking, once the memslots and vCPUs exist.
  Result<void> start_dirty_tracking(const MachineConfig& config);
  void serve_until_stopped();
  // Decide the end (when `stop` won) and wake the serving thread.
  void wake_if_decided(bool decided);
  void print_end_of_run_report() const;
  void pause_vcpus();
  void resume_vcpus();
  void log_fault(unsigned vcpu, Ipa ipa, bool write, size_t size, FaultKind kind,
                 FaultResolution resolution, std::chrono::steady_clock::time_point exit_time);
  Result<void> start_fault_handling(const MachineConfig& config, bool log_faults);
  // The pool, window and engine of config.reclaim (after fault handling and dirty tracking).
  Result<void> create_reclaim(MachineConfig& config);
  // Stop the watchdog, then the handler (vCPUs already stopped); idempotent.
  void stop_fault_handling();
  // KVM's stats files, once the vCPUs exist (unavailable rather than an error).
  void open_kvm_stats();
  // The shared hold of controls_lock_ of a control that needs the fault handler running, or
  // kFailedPrecondition once the VM has stopped (controls_open_ false).
  Result<std::shared_lock<std::shared_mutex>> open_controls(const char* what) const;
  // Under open_controls(): drop the stage-2 TLB's and KVM's translations of `range`, with the
  // reclaim epochs held off; the TLB entries and the RAM pages dropped.
  Result<std::pair<uint64_t, uint64_t>> drop_translations(IpaRange range);
  // Harvest into dirty_published_ (through the engine with reclaim), under dirty_take_lock_.
  Result<void> harvest_dirty_log();
  void write_stats_file() const;

  std::string name_;
  uint32_t vmid_;
  Kvm kvm_;
  KvmVm vm_;
  VcpuGate gate_;
  std::unique_ptr<KvmMemslots> memslot_sink_;
  std::unique_ptr<GuestPhysical> physical_;
  std::unique_ptr<FaultLog> fault_log_;
  std::unique_ptr<Console> console_;
  std::unique_ptr<Uart16550> uart_;
  std::unique_ptr<MachineDevices> devices_;
  std::string guest_cmdline_;
  std::vector<std::unique_ptr<Vcpu>> vcpus_;
  // prepare()'s vCPU fds (CPUID set), taken by create_vcpus() at launch().
  std::vector<KvmVcpu> prepared_vcpus_;
  bool prepared_only_ = false;
  std::atomic<uint64_t> first_run_unix_ns_{0};
  std::function<void(uint64_t)> first_run_observer_;
  // At most one is set (config.dirty_tracking); both read memslot_sink_'s table. The ring is
  // used by vCPU threads (ring-full exits), which ~Machine stops first.
  std::unique_ptr<DirtyLog> dirty_log_;
  std::unique_ptr<DirtyRing> dirty_ring_;
  // The dirty log clients take (take_dirty_log), filled by whoever harvests: the reclaim
  // engine, or take_dirty_log itself without reclaim. Set with dirty tracking.
  std::unique_ptr<DirtyAccumulator> dirty_published_;
  std::mutex dirty_take_lock_;  // one take (and, without reclaim, one harvest) at a time
  std::chrono::steady_clock::time_point dirty_taken_at_;  // dirty_take_lock_
  KvmMmuStatsSource kvm_stats_;
  // Held shared by the controls that wait on the fault handler (the zap of a shootdown waits
  // until the handler reads its REMOVE event), exclusively by stop_fault_handling() to close
  // them before the handler stops.
  mutable std::shared_mutex controls_lock_;
  bool controls_open_ = true;  // controls_lock_
  UniqueFd stop_event_;
  VmStop stop_;
  FaultConfig fault_config_;
  std::optional<LogFile> stats_file_;
  FaultCounters mmio_faults_;  // the MMIO exits log_fault() answered
  VcpuRegistry vcpu_registry_;
  // The pool, window and engine (config.reclaim). Declared before the fault handler, whose
  // threads load from the pool, so it goes after it; stopped before it (machine.cc).
  std::unique_ptr<MachineReclaim> reclaim_;
  // Declared after physical_ (its resolver) so they go first; stop_fault_handling() stops
  // them explicitly anyway, after the vCPUs and before anything else is torn down.
  std::unique_ptr<FaultHandler> fault_handler_;
  std::unique_ptr<FaultWatchdog> fault_watchdog_;
  bool fault_handling_stopped_ = false;
  bool fault_handler_left_behind_ = false;  // a handler thread did not stop: keep physical_
};

}  // namespace hvmm::vmm
