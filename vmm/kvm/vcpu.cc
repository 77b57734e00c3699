// vCPU threads: the KVM_RUN loop and exit dispatch.
#include "hvmm/vmm/kvm/vcpu.h"

#include <unistd.h>

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstring>

#include "hvmm/vmm/boot/x86_state.h"
#include "hvmm/vmm/machine/exit_status.h"

namespace hvmm::vmm {
namespace {

// The signal that kicks a vCPU thread out of KVM_RUN.
int kick_signal() {
  return SIGRTMIN;
}

// The name of a KVM_EXIT_INTERNAL_ERROR suberror.
const char* internal_error_name(uint32_t suberror) {
  switch (suberror) {
    case KVM_INTERNAL_ERROR_EMULATION:
      return "instruction emulation failed";
    case KVM_INTERNAL_ERROR_SIMUL_EX:
      return "exception while delivering an exception";
    case KVM_INTERNAL_ERROR_DELIVERY_EV:
      return "event delivery failed";
    default:
      return "unexpected exit";
  }
}

// Does nothing: its only purpose is to interrupt KVM_RUN with EINTR.
void on_kick(int) {}

}  // namespace

// Register the kick handler without SA_RESTART so the ioctl returns EINTR.
void Vcpu::install_kick_handler() {
  struct sigaction action {};
  action.sa_handler = on_kick;
  sigemptyset(&action.sa_mask);
  sigaction(kick_signal(), &action, nullptr);
}

// Stop and join the thread before the vCPU fd and run area go away.
Vcpu::~Vcpu() {
  stop();
  join();
}

// Launch the run loop on its own thread.
void Vcpu::start() {
  thread_ = std::thread([this] { run_loop(); });
}

// Flag the loop, block the next entry and interrupt the current one.
void Vcpu::stop() {
  std::lock_guard guard(kick_lock_);
  stopping_.store(true);
  kick_locked();
}

// Block the next entry and interrupt the current one; the loop then meets the gate.
void Vcpu::kick() {
  std::lock_guard guard(kick_lock_);
  kick_locked();
}

// The thread is signalled only while its loop runs, so never after it has exited.
void Vcpu::kick_locked() {
  std::atomic_ref<uint8_t>(vcpu_.run_area()->immediate_exit).store(1);
  if (live_thread_) {
    pthread_kill(*live_thread_, kick_signal());
  }
}

// Allow entries again, unless stop() has been called (its kick must stay).
void Vcpu::unkick() {
  std::lock_guard guard(kick_lock_);
  if (!stopping_.load()) {
    std::atomic_ref<uint8_t>(vcpu_.run_area()->immediate_exit).store(0);
  }
}

// Wait for the run loop to end (never from the vCPU's own thread).
void Vcpu::join() {
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

// Run until stopped or until an exit cannot be handled. EAGAIN (an AP right after its
// SIPI on this host) and EINTR (a kick) just loop back to the stop check and the gate.
void Vcpu::run_loop() {
  {
    std::lock_guard guard(kick_lock_);
    live_thread_ = pthread_self();
  }
  const pid_t tid = ::gettid();
  host_.vcpu_thread_started(vcpu_.id(), tid);
  {
    VcpuGate::Member membership(gate_);
    run_until_stopped();
  }
  host_.vcpu_thread_stopped(vcpu_.id(), tid);
  std::lock_guard guard(kick_lock_);
  live_thread_.reset();
}

// The KVM_RUN loop proper.
void Vcpu::run_until_stopped() {
  while (!stopping_.load()) {
    gate_.checkpoint();
    if (stopping_.load()) {
      return;
    }
    if (!entered_) {
      entered_ = true;
      host_.vcpu_first_entry(vcpu_.id());
    }
    int error = vcpu_.run();
    auto exit_time = std::chrono::steady_clock::now();
    if (error == EINTR || error == EAGAIN) {
      continue;
    }
    if (error != 0) {
      fail(kExitInternalError, fmt::format("KVM_RUN failed: {}", std::strerror(error)));
      return;
    }
    if (!handle_exit(exit_time)) {
      return;
    }
  }
}

// Dispatch one exit reason.
bool Vcpu::handle_exit(std::chrono::steady_clock::time_point exit_time) {
  kvm_run* run = vcpu_.run_area();
  switch (run->exit_reason) {
    case KVM_EXIT_IO:
      handle_io();
      return true;
    case KVM_EXIT_MMIO:
      host_.mmio(vcpu_.id(), Ipa(run->mmio.phys_addr), run->mmio.is_write != 0,
                 std::span<uint8_t>(run->mmio.data, run->mmio.len), exit_time);
      return true;
    case KVM_EXIT_INTR:
    case KVM_EXIT_HLT:
      return true;
    case KVM_EXIT_DIRTY_RING_FULL:
      if (host_.dirty_ring_full(vcpu_.id())) {
        return true;
      }
      fail(kExitInternalError,
           "dirty ring full (KVM_EXIT_DIRTY_RING_FULL) and it could not be harvested");
      return false;
    case KVM_EXIT_SHUTDOWN:
      fail(kExitTripleFault, "triple fault (KVM_EXIT_SHUTDOWN)");
      return false;
    case KVM_EXIT_FAIL_ENTRY:
      fail(kExitInternalError,
           fmt::format("VM entry failed (KVM_EXIT_FAIL_ENTRY, hardware reason {:#x})",
                       run->fail_entry.hardware_entry_failure_reason));
      return false;
    case KVM_EXIT_INTERNAL_ERROR:
      fail(kExitInternalError,
           fmt::format("KVM internal error: {} (suberror {})",
                       internal_error_name(run->internal.suberror), run->internal.suberror));
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      fail(kExitGuestShutdown,
           fmt::format("guest requested system event {} (shutdown/reset) without writing port "
                       "0xf4",
                       run->system_event.type));
      return false;
    default:
      fail(kExitInternalError, fmt::format("unhandled KVM exit reason {}", run->exit_reason));
      return false;
  }
}

// Split a (possibly string) port exit into `count` accesses of `size` bytes.
void Vcpu::handle_io() {
  kvm_run* run = vcpu_.run_area();
  auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
  bool write = run->io.direction == KVM_EXIT_IO_OUT;
  for (uint32_t i = 0; i < run->io.count; ++i) {
    host_.port_io(vcpu_.id(), run->io.port, write,
                  std::span<uint8_t>(data + i * run->io.size, run->io.size));
  }
}

// Report a fatal exit with the registers at the time.
void Vcpu::fail(int status, const std::string& what) {
  auto regs = vcpu_.get_regs();
  auto sregs = vcpu_.get_sregs();
  std::string dump =
      regs && sregs ? format_register_dump(*regs, *sregs) : "(registers unavailable)\n";
  host_.vcpu_failed(vcpu_.id(), status, what, dump);
}

}  // namespace hvmm::vmm
