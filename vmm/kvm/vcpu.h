// Vcpu: one KVM vCPU and the host thread that runs it.
//
// The thread loops on KVM_RUN and hands port and MMIO exits to a VcpuHost (the Machine).
// Fatal exits (triple fault, failed entry, KVM internal error) are reported with a
// register dump. stop() ends the loop without busy waiting: it sets kvm_run.immediate_exit
// and sends the thread a signal, so a vCPU inside KVM_RUN returns at once and one about to
// enter does not enter. kick()/unkick() do the same for a VcpuGate pause: the loop parks at
// the gate's checkpoint before every KVM_RUN.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include "hvmm/base/address.h"
#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/kvm/vcpu_gate.h"

namespace hvmm::vmm {

// VcpuHost is what a vCPU thread calls back into.
class VcpuHost {
 public:
  virtual ~VcpuHost() = default;
  // A port access: `data` is the value written, or is filled with the value read.
  virtual void port_io(unsigned vcpu, uint16_t port, bool write, std::span<uint8_t> data) = 0;
  // An MMIO exit (no memslot at `ipa`); `exit_time` is when KVM_RUN returned.
  virtual void mmio(unsigned vcpu, Ipa ipa, bool write, std::span<uint8_t> data,
                    std::chrono::steady_clock::time_point exit_time) = 0;
  // The vCPU cannot continue because of `what` ("triple fault (KVM_EXIT_SHUTDOWN)"): stop
  // the VM with `status`, printing `dump` (the registers, several lines).
  virtual void vcpu_failed(unsigned vcpu, int status, const std::string& what,
                           const std::string& dump) = 0;
  // Called on the vCPU's own thread, `tid`, before its first KVM_RUN (the Machine records
  // it, so a userfaultfd fault, which names the faulting thread, is attributed to the vCPU).
  virtual void vcpu_thread_started(unsigned /*vcpu*/, pid_t /*tid*/) {}
  // Called on the vCPU's thread after its last KVM_RUN.
  virtual void vcpu_thread_stopped(unsigned /*vcpu*/, pid_t /*tid*/) {}
  // The vCPU's dirty ring is full (KVM_EXIT_DIRTY_RING_FULL): harvest it and reset the rings
  // so the vCPU can enter again without exiting at once. False when that failed (the vCPU
  // then stops; re-entering a full ring would only exit again, a spin).
  virtual bool dirty_ring_full(unsigned /*vcpu*/) { return false; }
  // Called on the vCPU's thread just before its first KVM_RUN (the Machine reports when the
  // guest first ran: the end of a start, for warm-start figures).
  virtual void vcpu_first_entry(unsigned /*vcpu*/) {}
};

class Vcpu {
 public:
  Vcpu(KvmVcpu vcpu, VcpuHost& host, VcpuGate& gate)
      : vcpu_(std::move(vcpu)), host_(host), gate_(gate) {}
  ~Vcpu();
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;

  // Install the no-op handler of the kick signal (once per process).
  static void install_kick_handler();

  KvmVcpu& kvm() { return vcpu_; }
  // Start the thread.
  void start();
  // Make the thread leave KVM_RUN and end; safe to call more than once.
  void stop();
  // Wait for the thread to end.
  void join();
  // Make the thread leave KVM_RUN (for a gate pause) without ending it.
  void kick();
  // Undo kick() unless the vCPU is stopping.
  void unkick();

 private:
  void run_loop();
  void run_until_stopped();
  // Handle one exit; false when the vCPU must stop.
  bool handle_exit(std::chrono::steady_clock::time_point exit_time);
  void handle_io();
  void fail(int status, const std::string& what);
  // Set immediate_exit and signal the run loop's thread, if it runs; kick_lock_ held.
  void kick_locked();

  KvmVcpu vcpu_;
  VcpuHost& host_;
  VcpuGate& gate_;
  std::thread thread_;
  std::mutex kick_lock_;                  // orders immediate_exit updates; guards live_thread_
  std::optional<pthread_t> live_thread_;  // the run loop's thread while it runs
  std::atomic<bool> stopping_{false};
  bool entered_ = false;  // the run loop's thread only
};

}  // namespace hvmm::vmm
