// The Machine: building a VM from its configuration and running it to its exit status.
#include "hvmm/vmm/machine/machine.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <thread>

#include "hvmm/vmm/boot/boot_data.h"
#include "hvmm/vmm/boot/x86_state.h"
#include "hvmm/vmm/host/process_memory.h"
#include "hvmm/vmm/kvm/cpuid.h"
#include "hvmm/vmm/kvm/kvm_memslots.h"
#include "hvmm/vmm/machine/exit_status.h"
#include "hvmm/vmm/machine/memory_report.h"
#include "hvmm/vmm/reclaim/dirty/dirty_tracking_setup.h"

namespace hvmm::vmm {
namespace {

// Prefix a setup error with the step that failed.
Error in_step(const char* step, const Error& error) {
  return Error{error.code, fmt::format("{}: {}", step, error.message)};
}

}  // namespace

// Open KVM, then build the VM on it.
Result<std::unique_ptr<Machine>> Machine::create(MachineConfig config) {
  auto kvm = Kvm::open();
  HVMM_TRY(kvm);
  return create(std::move(config), std::move(*kvm));
}

// Make the VM, then build everything inside it.
Result<std::unique_ptr<Machine>> Machine::create(MachineConfig config, Kvm kvm) {
  auto vm = KvmVm::create(kvm);
  HVMM_TRY(vm);
  auto machine = std::make_unique<Machine>(config, std::move(kvm), std::move(*vm));
  HVMM_TRY(machine->build(config));
  return machine;
}

// Own the KVM fds; build() creates everything else.
Machine::Machine(const MachineConfig& config, Kvm kvm, KvmVm vm)
    : name_(config.name), vmid_(config.vmid), kvm_(std::move(kvm)), vm_(std::move(vm)) {}

// Stop every vCPU thread before the fault handler and the devices they call go away, and
// the handler before the memory it resolves faults of. A handler thread that would not stop
// may still use the map: then the guest-physical space is deliberately never freed.
Machine::~Machine() {
  for (auto& vcpu : vcpus_) {
    vcpu->stop();
  }
  for (auto& vcpu : vcpus_) {
    vcpu->join();
  }
  if (reclaim_) {
    reclaim_->stop();
  }
  stop_fault_handling();
  if (devices_) {
    devices_->stop();
  }
  if (fault_handler_left_behind_) {
    [[maybe_unused]] GuestPhysical* kept = physical_.release();
    [[maybe_unused]] MachineReclaim* pool_kept = reclaim_.release();  // the thread may load
  }
}

// Devices, memory, kernel and vCPUs, in dependency order. The logs were opened (and
// checked) with the config, before the VM existed; they only change hands here.
Result<void> Machine::build(MachineConfig& config) {
  HVMM_TRY(create_stop_event());
  // Dirty tracking's capability comes before any memslot (manual protect decides how a
  // logging slot starts) and any vCPU (the ring is sized per vCPU at creation).
  uint32_t slot_flags = 0;
  if (config.reclaim && !config.dirty_tracking) {
    config.dirty_tracking = config.reclaim->dirty;  // cold = not written for N epochs
  }
  if (config.dirty_tracking) {
    auto flags = enable_dirty_tracking(vm_, *config.dirty_tracking, config.dirty_ring_entries);
    if (!flags) {
      return in_step("enabling dirty tracking", flags.error());
    }
    slot_flags = *flags;
  }
  // Userfaultfd faults are normal operation (every first touch): they are written only to a
  // --fault-log the user named, never to stderr by default.
  const bool log_userfaultfd_faults = config.fault_log.has_value();
  create_front(config);
  auto physical =
      GuestPhysical::create(config.memory_size, "hvmm-" + name_, static_cast<uint16_t>(vmid_));
  HVMM_TRY(physical);
  physical_ = std::move(*physical);
  HVMM_TRY(start_fault_handling(config, log_userfaultfd_faults));
  memslot_sink_ = std::make_unique<KvmMemslots>(vm_, slot_flags);
  // Only layout changes (unmap_ram) recreate memslots and pause the vCPUs; page-state
  // changes (balloon, free page reporting) punch the memfd while they run.
  physical_->set_layout_fence([this] { pause_vcpus(); }, [this] { resume_vcpus(); });
  // One memslot per RAM region, made here for the VM's life. The VM's first
  // KVM_SET_USER_MEMORY_REGION sleeps ~5 ms in KVM (an SRCU grace period), longer than all
  // the rest of build(): make the memslots on a worker meanwhile (it holds the map lock only
  // shared, so loading through the Translator goes on). Joined before build() returns: no
  // vCPU runs before its RAM has its memslots.
  Result<void> attached;
  std::jthread attach([&] { attached = physical_->attach_memslots(*memslot_sink_); });
  Result<void> loaded = load_and_create_vcpus(config);
  attach.join();
  HVMM_TRY(attached);
  HVMM_TRY(loaded);
  return finish_build(config);
}

// The stop requests' wake-up.
Result<void> Machine::create_stop_event() {
  stop_event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_event_.valid()) {
    return make_error(ErrorCode::kInternal, "eventfd failed: {}", std::strerror(errno));
  }
  return Ok();
}

// The logs, the stats file, the console and the UART change hands from the config.
void Machine::create_front(MachineConfig& config) {
  fault_log_ = std::make_unique<FaultLog>(std::move(config.fault_log));
  fault_config_ = config.faults;
  stats_file_ = std::move(config.stats_file);
  console_ = std::make_unique<Console>(std::move(config.console_log), config.console_log_max,
                                       config.console_input);
  uart_ = std::make_unique<Uart16550>(
      [this](uint8_t byte) { console_->output(byte); },
      [this](bool level) { [[maybe_unused]] auto r = vm_.set_irq_line(kCom1Irq, level); });
}

// What needs the memslots and the vCPUs: dirty tracking, KVM's stats, reclaim.
Result<void> Machine::finish_build(MachineConfig& config) {
  HVMM_TRY(start_dirty_tracking(config));
  open_kvm_stats();
  return create_reclaim(config);
}

// The VM, then its RAM, memslots and vCPU fds; the name and VMID are placeholders until
// launch() (the memfd keeps the name "hvmm-prepared": memfd names cannot change).
Result<std::unique_ptr<Machine>> Machine::prepare(const PrepareConfig& prepare, Kvm kvm) {
  auto vm = KvmVm::create(kvm);
  HVMM_TRY(vm);
  MachineConfig placeholder;
  placeholder.name = "prepared";
  placeholder.memory_size = prepare.memory_size;
  placeholder.vcpus = prepare.vcpus;
  auto machine = std::make_unique<Machine>(placeholder, std::move(kvm), std::move(*vm));
  HVMM_TRY(machine->prepare_memory_and_vcpus(prepare));
  return machine;
}

// Synchronously: there is nothing else to overlap the memslots' SRCU wait with here, and a
// prepared VM waits for its launch anyway.
Result<void> Machine::prepare_memory_and_vcpus(const PrepareConfig& prepare) {
  auto physical =
      GuestPhysical::create(prepare.memory_size, "hvmm-" + name_, static_cast<uint16_t>(vmid_));
  HVMM_TRY(physical);
  physical_ = std::move(*physical);
  memslot_sink_ = std::make_unique<KvmMemslots>(vm_, 0);
  if (auto attached = physical_->attach_memslots(*memslot_sink_); !attached) {
    return in_step("creating memslots", attached.error());
  }
  auto supported = kvm_.supported_cpuid();
  HVMM_TRY(supported);
  for (unsigned id = 0; id < prepare.vcpus; ++id) {
    auto vcpu = KvmVcpu::create(vm_, id, kvm_.vcpu_mmap_size());
    if (!vcpu) {
      return in_step(fmt::format("creating vCPU {}", id).c_str(), vcpu.error());
    }
    HVMM_TRY(vcpu->set_cpuid(cpuid_for_vcpu(*supported, id, prepare.vcpus)));
    prepared_vcpus_.push_back(std::move(*vcpu));
  }
  prepared_only_ = true;
  return Ok();
}

// A launch may only use what was prepared: the same RAM and vCPUs, and slots without dirty
// logging (its capability must come before any memslot).
Result<void> Machine::check_prepared_matches(const MachineConfig& config) const {
  if (!prepared_only_) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "launch: the machine is not a prepared one (or was launched already)");
  }
  if (config.memory_size != physical_->memory_size()) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "memory_bytes: {} bytes, but this VM process was prepared with {}",
                      config.memory_size, physical_->memory_size());
  }
  if (config.vcpus != prepared_vcpus_.size()) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "vcpus: {}, but this VM process was prepared with {}", config.vcpus,
                      prepared_vcpus_.size());
  }
  if (config.dirty_tracking || config.reclaim) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "{}: a prepared VM's memslots have no dirty logging (start it cold)",
                      config.reclaim ? "reclaim_policy" : "dirty_tracking");
  }
  return Ok();
}

// build() without what prepare() made: the same parts in the same order, then the memslots
// are already there (the fault handler registers RAM after them, which KVM does not mind:
// it faults pages in through the mapping when the guest first touches them).
Result<void> Machine::launch(MachineConfig config) {
  HVMM_TRY(check_prepared_matches(config));
  prepared_only_ = false;
  name_ = config.name;
  vmid_ = config.vmid;
  physical_->set_vmid(static_cast<uint16_t>(vmid_));
  HVMM_TRY(create_stop_event());
  const bool log_userfaultfd_faults = config.fault_log.has_value();
  create_front(config);
  HVMM_TRY(start_fault_handling(config, log_userfaultfd_faults));
  physical_->set_layout_fence([this] { pause_vcpus(); }, [this] { resume_vcpus(); });
  HVMM_TRY(load_and_create_vcpus(config));
  return finish_build(config);
}

// Opened now, before the VM runs (and before a VM process may be sandboxed): reading them
// later is a pread. A failure leaves the figures unavailable, said once on stderr.
void Machine::open_kvm_stats() {
  std::vector<KvmVcpu*> vcpus;
  for (auto& vcpu : vcpus_) {
    vcpus.push_back(&vcpu->kvm());
  }
  auto source = KvmMmuStatsSource::open(vm_, vcpus);
  if (!source) {
    fmt::print(stderr, "hvmm: KVM's MMU figures are unavailable: {}\n", source.error().message);
    return;
  }
  kvm_stats_ = std::move(*source);
}

// Reclaim needs the handler (write protection, refaults) and the dirty source, so it comes
// last; its epochs start with the vCPUs (run()).
Result<void> Machine::create_reclaim(MachineConfig& config) {
  if (!config.reclaim) {
    return Ok();
  }
  if (!fault_handler_) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "reclaim needs userfaultfd (reclaimed pages come back through it)");
  }
  MachineReclaim::Parts parts{*physical_, fault_handler_->uffd(), dirty_source(),
                              dirty_published_.get(), [this](const Error& error) {
                                request_stop(kExitInternalError,
                                             fmt::format("reclaim: {}", error.message));
                              }};
  auto reclaim =
      MachineReclaim::create(std::move(parts), *config.reclaim, std::move(config.reclaim_swap));
  if (!reclaim) {
    return in_step("starting reclaim", reclaim.error());
  }
  reclaim_ = std::move(*reclaim);
  return Ok();
}

// The log reads the slots' bitmaps; the ring maps every vCPU's ring (before any vCPU runs); the
// accumulator is the dirty log clients take (take_dirty_log).
Result<void> Machine::start_dirty_tracking(const MachineConfig& config) {
  if (!config.dirty_tracking) {
    return Ok();
  }
  dirty_published_ = std::make_unique<DirtyAccumulator>(physical_->ram(), physical_->memory_size());
  dirty_taken_at_ = std::chrono::steady_clock::now();
  if (*config.dirty_tracking == DirtyTracking::kLog) {
    dirty_log_ = std::make_unique<DirtyLog>(kvm_dirty_log_ioctls(vm_), *memslot_sink_);
    return Ok();
  }
  dirty_ring_ =
      std::make_unique<DirtyRing>([this] { return vm_.reset_dirty_rings(); }, *memslot_sink_);
  for (auto& vcpu : vcpus_) {
    auto ring = KvmDirtyRing::map(vcpu->kvm(), config.dirty_ring_entries);
    if (!ring) {
      return in_step("enabling dirty tracking", ring.error());
    }
    dirty_ring_->add_ring(std::move(*ring));
  }
  return Ok();
}

// Register every RAM region's primary mapping with a FaultHandler resolving from the map, and
// watch it. Runs before any vCPU exists; the loader writes through the alias, unregistered.
Result<void> Machine::start_fault_handling(const MachineConfig& config, bool log_faults) {
  if (!config.faults.userfaultfd) {
    return Ok();
  }
  FaultHandlerConfig handler;
  for (const RamRegion& region : physical_->ram()) {
    handler.regions.push_back(FaultRegion{region.range.start,
                                          physical_->memory().guest_base() + region.offset.value(),
                                          region.offset, region.range.size});
  }
  handler.memfd = physical_->memory().fd();
  handler.max_window = config.faults.fault_around_max;
  handler.vm = name_;
  handler.vmid = vmid_;
  handler.log = log_faults ? fault_log_.get() : nullptr;
  handler.vcpus = &vcpu_registry_;
  handler.stop = [this](int status, const std::string& reason) { request_stop(status, reason); };
  if (config.reclaim) {
    // The reclaim window write-protects pages; reclaimed pages come back from the pool.
    handler.register_write_protect = true;
    handler.reclaimed = physical_.get();
  }
  auto created = FaultHandler::create(*physical_, std::move(handler));
  if (!created) {
    return make_error(created.error().code,
                      "registering guest RAM with userfaultfd: {} (userfaultfd off leaves first "
                      "touches to the host kernel)",
                      created.error().message);
  }
  fault_handler_ = std::move(*created);
  fault_watchdog_ = std::make_unique<FaultWatchdog>(
      [handler = fault_handler_.get()] { return handler->health(); },
      [this](int status, const std::string& reason) { request_stop(status, reason); });
  return Ok();
}

// The watchdog first (it must not fire on a handler being stopped), then the handler. A
// thread left behind is reported and keeps the guest-physical space alive (see ~Machine).
void Machine::stop_fault_handling() {
  {
    std::unique_lock closing(controls_lock_);  // waits for a shootdown's zap in progress
    controls_open_ = false;
  }
  fault_watchdog_.reset();
  if (!fault_handler_ || fault_handling_stopped_) {
    return;
  }
  fault_handling_stopped_ = true;
  if (auto stopped = fault_handler_->stop(); !stopped) {
    fmt::print(stderr, "hvmm: {}\n", stopped.error().message);
    fault_handler_left_behind_ = true;
  }
}

// Make the devices, parse the kernel, load it with its boot data (the command line
// announcing the virtio devices) and create the vCPUs at its entry point.
Result<void> Machine::load_and_create_vcpus(const MachineConfig& config) {
  auto devices =
      MachineDevices::create(config.devices, kvm_, vm_, *physical_, *uart_,
                             [this](uint8_t status) { wake_if_decided(stop_.guest_exit(status)); });
  if (!devices) {
    return in_step("creating devices", devices.error());
  }
  devices_ = std::move(*devices);
  guest_cmdline_ = virtio::announce_on_cmdline(config.cmdline, devices_->slots());
  auto kernel = parse_pvh_kernel(config.kernel);
  HVMM_TRY(kernel);
  auto start_info = load(config, *kernel);
  HVMM_TRY(start_info);
  return create_vcpus(config, kernel->entry, *start_info);
}

// Load the kernel, the initrd (module 0) and the boot data; return the start info address.
Result<Ipa> Machine::load(const MachineConfig& config, const PvhKernel& kernel) {
  HVMM_TRY(check_kernel_placement(kernel, physical_->ram(), kBootData));
  HVMM_TRY(load_kernel(kernel, config.kernel, *physical_));
  BootInfo info{guest_cmdline_, physical_->ram(), {}};
  if (config.initrd) {
    auto range = place_module(config.initrd->size(), physical_->ram(), kernel);
    HVMM_TRY(range);
    HVMM_TRY(physical_->write(range->start, *config.initrd));
    info.modules.push_back(BootModule{*range});
  }
  return write_boot_data(*physical_, info);
}

// Create every vCPU with its CPUID; only the boot vCPU gets the PVH entry state.
Result<void> Machine::create_vcpus(const MachineConfig& config, Ipa entry, Ipa start_info) {
  auto supported = kvm_.supported_cpuid();
  HVMM_TRY(supported);
  std::vector<KvmVcpu> prepared = std::move(prepared_vcpus_);
  prepared_vcpus_.clear();
  for (unsigned id = 0; id < config.vcpus; ++id) {
    auto vcpu = id < prepared.size() ? Result<KvmVcpu>(std::move(prepared[id]))
                                     : KvmVcpu::create(vm_, id, kvm_.vcpu_mmap_size());
    if (!vcpu) {
      return in_step(fmt::format("creating vCPU {}", id).c_str(), vcpu.error());
    }
    if (id >= prepared.size()) {  // prepare() set the CPUID of its own
      HVMM_TRY(vcpu->set_cpuid(cpuid_for_vcpu(*supported, id, config.vcpus)));
    }
    if (id == 0) {
      auto sregs = vcpu->get_sregs();
      HVMM_TRY(sregs);
      set_pvh_entry_sregs(*sregs);
      HVMM_TRY(vcpu->set_sregs(*sregs));
      HVMM_TRY(vcpu->set_regs(pvh_entry_regs(entry, start_info)));
    }
    vcpus_.push_back(std::make_unique<Vcpu>(std::move(*vcpu), *this, gate_));
  }
  return Ok();
}

// Stop the world: every vCPU out of KVM_RUN and parked at the gate.
void Machine::pause_vcpus() {
  gate_.pause([this] {
    for (auto& vcpu : vcpus_) {
      vcpu->kick();
    }
  });
}

// Let the vCPUs enter the guest again.
void Machine::resume_vcpus() {
  gate_.resume([this] {
    for (auto& vcpu : vcpus_) {
      vcpu->unkick();
    }
  });
}

// Record the VMM's decision (first request wins) and wake the serving thread.
void Machine::request_stop(int status, std::string reason) {
  wake_if_decided(stop_.vmm_end(status, std::move(reason)));
}

// Only the request that decided the end needs to wake the serving thread.
void Machine::wake_if_decided(bool decided) {
  if (decided) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(stop_event_.get(), &one, sizeof(one));
  }
}

// What the logs are missing, then the VMM's end line: the last line on stderr.
void Machine::print_end_of_run_report() const {
  std::string report = console_->drop_report() +
                       fault_log_->summary(fault_counts_by_kind(fault_counts())) +
                       stop_.report_line();
  if (!report.empty()) {
    fmt::print(stderr, "{}", report);
  }
}

// Start the vCPUs with SIGINT/SIGTERM routed to a signalfd, serve until stopped, join.
int Machine::run() {
  Vcpu::install_kick_handler();
  sigset_t stop_signals;
  sigset_t saved;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, &saved);
  if (auto started = devices_->start(); !started) {
    request_stop(kExitSetupFailed, started.error().message);
  }
  for (auto& vcpu : vcpus_) {
    vcpu->start();
  }
  if (reclaim_) {
    if (auto started = reclaim_->start(); !started) {
      request_stop(kExitSetupFailed, fmt::format("starting reclaim: {}", started.error().message));
    }
  }
  serve_until_stopped();
  for (auto& vcpu : vcpus_) {
    vcpu->stop();
  }
  for (auto& vcpu : vcpus_) {
    vcpu->join();
  }
  if (reclaim_) {
    reclaim_->stop();
  }
  stop_fault_handling();
  devices_->stop();
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  print_end_of_run_report();
  write_stats_file();
  return stop_.status();
}

// Wait for a stop request, a stop signal or console input, without spinning.
void Machine::serve_until_stopped() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  UniqueFd signals(::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));
  while (true) {
    pollfd fds[3] = {{stop_event_.get(), POLLIN, 0},
                     {signals.get(), POLLIN, 0},
                     {console_->input_fd(), POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0 && errno != EINTR) {
      request_stop(kExitInternalError, fmt::format("poll failed: {}", std::strerror(errno)));
      return;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      return;
    }
    signalfd_siginfo info{};
    if ((fds[1].revents & POLLIN) != 0 && ::read(signals.get(), &info, sizeof(info)) > 0) {
      int signal = static_cast<int>(info.ssi_signo);
      const char* name = ::sigabbrev_np(signal);
      request_stop(kExitSignalBase + signal,
                   fmt::format("SIG{} received", name != nullptr ? name : std::to_string(signal)));
    }
    if ((fds[2].revents & (POLLIN | POLLHUP)) != 0) {
      auto bytes = console_->read_input();
      uart_->push_input(bytes);
    }
  }
}

// Port I/O goes to the device that claims the port; unclaimed reads are all-ones and
// unclaimed writes are ignored.
void Machine::port_io(unsigned /*vcpu*/, uint16_t port, bool write, std::span<uint8_t> data) {
  const bool claimed =
      write ? devices_->ports().write(port, data) : devices_->ports().read(port, data);
  if (!claimed && !write) {
    std::memset(data.data(), 0xff, data.size());
  }
}

// An MMIO exit goes to the device whose window holds it; otherwise it is a stage-2 fault
// the memslots did not satisfy: classify, answer, log.
void Machine::mmio(unsigned vcpu, Ipa ipa, bool write, std::span<uint8_t> data,
                   std::chrono::steady_clock::time_point exit_time) {
  const bool claimed =
      write ? devices_->mmio().write(ipa.value(), data) : devices_->mmio().read(ipa.value(), data);
  if (claimed) {
    return;
  }
  if (physical_->is_ram(ipa)) {
    // RAM in the map but not in a memslot: a layout change raced with this access. Serve
    // from memory through the map when it permits.
    auto served = write ? physical_->write(ipa, data) : physical_->read(ipa, data);
    if (served) {
      log_fault(vcpu, ipa, write, data.size(), FaultKind::kMemslotRace,
                FaultResolution::kServedFromRam, exit_time);
      return;
    }
    if (write) {
      log_fault(vcpu, ipa, write, data.size(), FaultKind::kPermission,
                FaultResolution::kWriteDropped, exit_time);
      return;
    }
  }
  if (!write) {
    std::memset(data.data(), 0xff, data.size());
  }
  log_fault(vcpu, ipa, write, data.size(), FaultKind::kMmioUnbacked,
            write ? FaultResolution::kWriteDropped : FaultResolution::kReadAllOnes, exit_time);
}

// Count and emit one fault record with the latency since the exit.
void Machine::log_fault(unsigned vcpu, Ipa ipa, bool write, size_t size, FaultKind kind,
                        FaultResolution resolution,
                        std::chrono::steady_clock::time_point exit_time) {
  auto latency = std::chrono::steady_clock::now() - exit_time;
  FaultRecord record;
  record.time = std::chrono::system_clock::now();
  record.vm = name_;
  record.vmid = vmid_;
  record.vcpu = vcpu;
  record.ipa = ipa;
  record.write = write;
  record.size = static_cast<unsigned>(size);
  record.set_outcome(kind, resolution);
  record.latency_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(latency).count());
  mmio_faults_.fault(kind, resolution, record.latency_ns);
  fault_log_->record(record);
}

// The MMIO counts plus the handler's.
FaultCounts Machine::fault_counts() const {
  FaultCounts counts = mmio_faults_.snapshot();
  if (fault_handler_) {
    counts += fault_handler_->counts();
  }
  return counts;
}

// Gather the figures (vCPUs stopped, memory still mapped) and write them as one JSON object.
// The map is not read when a handler thread was left behind: it may hold the map lock.
void Machine::write_stats_file() const {
  if (!stats_file_) {
    return;
  }
  MemoryReport report;
  report.vm = name_;
  report.exit_status = stop_.status();
  report.ended_by_vmm = !stop_.report_line().empty();
  report.memory_bytes = physical_->memory_size();
  report.userfaultfd = fault_handler_ != nullptr;
  report.fault_around_max = fault_config_.fault_around_max;
  if (auto host = read_process_memory(); host) {
    report.host = *host;
  } else {
    report.host_error = host.error().message;
  }
  if (!fault_handler_left_behind_) {
    report.pages = physical_->page_counts();
  }
  if (auto allocated = physical_->allocated_bytes(); allocated) {
    report.memfd_allocated_bytes = *allocated;
  }
  report.balloon = balloon_statistics();
  report.faults = fault_counts();
  if (auto figures = reclaim_figures(); figures) {
    report.reclaim = ReclaimReport{reclaim_->policy(), figures->stats};
    report.pool = figures->pool;
    report.working_set = figures->working_set;
  }
  const std::string text = format_memory_report(report);
  write_log(*stats_file_, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

// Record the vCPU's thread for fault attribution.
void Machine::vcpu_thread_started(unsigned vcpu, pid_t tid) {
  vcpu_registry_.add(tid, vcpu);
}

// The engine's, the pool's and the working set's figures now.
std::optional<ReclaimFigures> Machine::reclaim_figures() const {
  if (!reclaim_) {
    return std::nullopt;
  }
  return reclaim_->figures();
}

// Whichever source config.dirty_tracking chose.
DirtySource* Machine::dirty_source() {
  if (dirty_log_) {
    return dirty_log_.get();
  }
  return dirty_ring_.get();
}

// On the vCPU's thread: make room in its ring, or stop the VM saying why.
// The boot vCPU's first entry is when the guest's first instruction runs: recorded once.
void Machine::vcpu_first_entry(unsigned vcpu) {
  if (vcpu != 0) {
    return;
  }
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const uint64_t unix_ns =
      static_cast<uint64_t>(now.tv_sec) * 1000000000u + static_cast<uint64_t>(now.tv_nsec);
  first_run_unix_ns_.store(unix_ns);
  if (first_run_observer_) {
    first_run_observer_(unix_ns);
  }
}

bool Machine::dirty_ring_full(unsigned vcpu) {
  if (!dirty_ring_) {
    return false;
  }
  if (auto made_room = dirty_ring_->ring_full(vcpu); !made_room) {
    fmt::print(stderr, "hvmm: {}\n", made_room.error().message);
    return false;
  }
  return true;
}

// Forget the vCPU's thread.
void Machine::vcpu_thread_stopped(unsigned /*vcpu*/, pid_t tid) {
  vcpu_registry_.remove(tid);
}

// Set the balloon's target in pages.
Result<void> Machine::set_balloon_target(uint64_t bytes) {
  BalloonDevice* balloon = devices_->balloon();
  if (balloon == nullptr) {
    return make_error(ErrorCode::kFailedPrecondition, "VM {} has no balloon", name_);
  }
  if (bytes > physical_->memory_size()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "balloon target {} bytes is more than the VM's {} bytes of RAM", bytes,
                      physical_->memory_size());
  }
  balloon->set_target_pages(bytes / kPageSize);
  return Ok();
}

// Wait for the driver to report the target reached.
Result<void> Machine::wait_for_balloon(std::chrono::steady_clock::time_point deadline) {
  BalloonDevice* balloon = devices_->balloon();
  if (balloon == nullptr) {
    return make_error(ErrorCode::kFailedPrecondition, "VM {} has no balloon", name_);
  }
  return balloon->wait_for_target(deadline);
}

// The balloon's snapshot, if there is a balloon.
std::optional<BalloonStatistics> Machine::balloon_statistics() const {
  BalloonDevice* balloon = devices_->balloon();
  return balloon != nullptr ? std::optional(balloon->statistics()) : std::nullopt;
}

// Return the held stats buffer to the guest now.
void Machine::request_balloon_stats() {
  if (BalloonDevice* balloon = devices_->balloon(); balloon != nullptr) {
    balloon->request_stats();
  }
}

// Print the register dump and stop the VM with the failure's status.
void Machine::vcpu_failed(unsigned vcpu, int status, const std::string& what,
                          const std::string& dump) {
  fmt::print(stderr, "hvmm: vCPU {}: {}\n{}", vcpu, what, dump);
  request_stop(status, fmt::format("{} on vCPU {}", what, vcpu));
}

}  // namespace hvmm::vmm
