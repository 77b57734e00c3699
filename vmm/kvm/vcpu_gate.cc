// Stop-the-world fencing of vCPU threads.
#include "hvmm/vmm/kvm/vcpu_gate.h"

namespace hvmm::vmm {
namespace {

// True on a thread that is a gate member: it counts as parked while it pauses others.
thread_local bool tls_is_member = false;

}  // namespace

// Join the gate; from now on pauses wait for this thread.
VcpuGate::Member::Member(VcpuGate& gate) : gate_(gate) {
  std::lock_guard guard(gate_.lock_);
  ++gate_.members_;
  tls_is_member = true;
}

// Leave the gate; a pauser waiting for this thread stops waiting.
VcpuGate::Member::~Member() {
  std::lock_guard guard(gate_.lock_);
  --gate_.members_;
  tls_is_member = false;
  gate_.changed_.notify_all();
}

// Park while paused, telling the pauser we are out of KVM_RUN.
void VcpuGate::checkpoint() {
  std::unique_lock guard(lock_);
  if (pauses_ == 0) {
    return;
  }
  ++parked_;
  changed_.notify_all();
  changed_.wait(guard, [this] { return pauses_ == 0; });
  --parked_;
}

// Announce the pause, kick everyone, wait for every other member to park.
void VcpuGate::pause(const std::function<void()>& kick_all) {
  {
    std::lock_guard guard(lock_);
    ++pauses_;
  }
  kick_all();
  std::unique_lock guard(lock_);
  unsigned self = tls_is_member ? 1 : 0;
  changed_.wait(guard, [&] { return parked_ + self >= members_; });
}

// Drop one pause; the last one clears the kicks and releases the members.
void VcpuGate::resume(const std::function<void()>& unkick_all) {
  std::lock_guard guard(lock_);
  if (pauses_ == 1) {
    unkick_all();
  }
  --pauses_;
  changed_.notify_all();
}

}  // namespace hvmm::vmm
