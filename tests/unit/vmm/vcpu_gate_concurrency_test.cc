// Tests of VcpuGate, the stop-the-world fence around memslot changes, with threads playing
// vCPUs: while a pause is in effect no member is "in the guest".
#include "hvmm/vmm/kvm/vcpu_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace hvmm::vmm {
namespace {

// A pretend vCPU: checkpoint, then stay "in the guest" until kicked (like immediate_exit
// and the kick signal), then loop.
void pretend_vcpu(VcpuGate& gate, std::atomic<int>& in_guest, std::atomic<bool>& kicked,
                  std::atomic<bool>& done) {
  VcpuGate::Member membership(gate);
  while (!done.load()) {
    gate.checkpoint();
    in_guest.fetch_add(1);
    for (int i = 0; i < 1000 && !kicked.load() && !done.load(); ++i) {
      std::this_thread::yield();
    }
    in_guest.fetch_sub(1);
  }
}

// Across many pauses from another thread, no member is in the guest while paused.
TEST(VcpuGate, PauseKeepsEveryMemberOut) {
  VcpuGate gate;
  std::atomic<int> in_guest{0};
  std::atomic<bool> kicked{false};
  std::atomic<bool> done{false};
  std::vector<std::thread> vcpus;
  for (int i = 0; i < 4; ++i) {
    vcpus.emplace_back(pretend_vcpu, std::ref(gate), std::ref(in_guest), std::ref(kicked),
                       std::ref(done));
  }
  for (int round = 0; round < 200; ++round) {
    gate.pause([&] { kicked.store(true); });
    EXPECT_EQ(in_guest.load(), 0) << "round " << round;
    gate.resume([&] { kicked.store(false); });
  }
  done.store(true);
  for (auto& vcpu : vcpus) {
    vcpu.join();
  }
}

// A member may pause the others itself (a device handler changing the map): it counts as
// parked, so the pause completes instead of waiting for itself.
TEST(VcpuGate, MemberCanPauseOthers) {
  VcpuGate gate;
  std::atomic<int> in_guest{0};
  std::atomic<bool> kicked{false};
  std::atomic<bool> done{false};
  std::thread other(pretend_vcpu, std::ref(gate), std::ref(in_guest), std::ref(kicked),
                    std::ref(done));
  std::thread self([&] {
    VcpuGate::Member membership(gate);
    for (int round = 0; round < 50; ++round) {
      gate.pause([&] { kicked.store(true); });
      EXPECT_EQ(in_guest.load(), 0);
      gate.resume([&] { kicked.store(false); });
    }
  });
  self.join();
  done.store(true);
  other.join();
}

// With no members (vCPUs not started or all exited) a pause returns at once, and nested
// pauses release only at the last resume.
TEST(VcpuGate, NoMembersAndNesting) {
  VcpuGate gate;
  int unkicks = 0;
  gate.pause([] {});
  gate.pause([] {});
  gate.resume([&] { ++unkicks; });
  EXPECT_EQ(unkicks, 0);
  gate.resume([&] { ++unkicks; });
  EXPECT_EQ(unkicks, 1);
  gate.checkpoint();  // not paused: returns
}

}  // namespace
}  // namespace hvmm::vmm
