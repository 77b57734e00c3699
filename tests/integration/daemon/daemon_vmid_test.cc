// The daemon's one VmidAllocator: VM processes lease their VMID at Start and give it back when
// they end; two running VMs never share one; a rollover's flush reaches every running VM
// process exactly once. Randomized starts and stops against a model, with 2-bit VMIDs (three
// usable) so that rollovers come quickly.
#include <map>
#include <random>
#include <set>

#include "daemon_client.h"

namespace hvmm::testing {
namespace {

class Vmids : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.start()) << daemon_.log();
    client_ = std::make_unique<DaemonClient>(daemon_.channel());
  }

  uint64_t rollovers() {
    v1::GetDaemonInfoResponse info;
    EXPECT_TRUE(client_->daemon->GetDaemonInfo(client_->context().get(), {}, &info).ok());
    return info.vmid_rollovers();
  }

  grpc::Status start(const std::string& name, v1::Vm* vm) {
    v1::StartVmRequest request;
    request.set_name(name);
    request.set_wait(true);
    v1::StartVmResponse response;
    grpc::Status status = client_->vms->Start(client_->context().get(), request, &response);
    *vm = response.vm();
    return status;
  }

  DaemonHarness daemon_{fake_daemon_options(2)};
  std::unique_ptr<DaemonClient> client_;
};

// Every running VM holds a distinct VMID; a fourth running VM is refused (three VMIDs);
// each running VM's process counts exactly the rollovers that happened while it ran.
TEST_F(Vmids, LeasesNeverCollideAndEveryRolloverFlushesEveryRunningVm) {
  const std::vector<std::string> names = {"a", "b", "c", "d", "e"};
  v1::VmSpec spec;
  spec.set_memory_bytes(16 << 20);
  for (const auto& name : names) {
    ASSERT_TRUE(client_->create(name, spec, false).ok());
  }
  std::map<std::string, uint64_t> running;  // name -> rollovers when it started
  std::mt19937 random(12345);
  uint64_t refused = 0;
  for (int step = 0; step < 120; ++step) {
    const std::string& name = names[random() % names.size()];
    if (running.count(name) != 0) {
      ASSERT_TRUE(client_->stop(name, 2000).ok()) << name;
      running.erase(name);
    } else {
      v1::Vm vm;
      grpc::Status status = start(name, &vm);
      if (running.size() == 3) {
        // Every VMID of the generation is held by a running VM: nothing to hand out.
        EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
            << step << " " << status.error_message();
        EXPECT_NE(status.error_message().find("VMID"), std::string::npos);
        ++refused;
        continue;
      }
      ASSERT_TRUE(status.ok()) << step << " " << status.error_message();
      ASSERT_EQ(vm.state(), v1::VM_STATE_RUNNING);
      running[name] = rollovers();
    }
    // The model's invariants, checked against List and each running VM's own count.
    v1::ListVmsResponse list;
    ASSERT_TRUE(client_->list(&list).ok());
    std::set<uint32_t> vmids;
    uint64_t now = rollovers();
    for (const v1::Vm& vm : list.vms()) {
      bool is_running = running.count(vm.name()) != 0;
      ASSERT_EQ(vm.state() == v1::VM_STATE_RUNNING, is_running) << vm.name() << " step " << step;
      if (!is_running) {
        EXPECT_EQ(vm.vmid(), 0u);
        continue;
      }
      EXPECT_GE(vm.vmid(), 1u);
      EXPECT_LE(vm.vmid(), 3u);
      EXPECT_TRUE(vmids.insert(vm.vmid()).second)
          << "VMID " << vm.vmid() << " twice, step " << step;
      v1::MemoryStats stats;
      ASSERT_TRUE(client_->stats(vm.name(), &stats).ok());
      EXPECT_EQ(stats.vmid(), vm.vmid()) << "the VM process was launched with another VMID";
      EXPECT_EQ(stats.tlb().flushes_all(), now - running[vm.name()])
          << vm.name() << " step " << step;
    }
  }
  EXPECT_GE(rollovers(), 5u) << "the walk was meant to roll the VMIDs over";
  EXPECT_GT(refused, 0u);
  // The flushes are in the running VMs' consoles too.
  for (const auto& [name, since] : running) {
    if (rollovers() > since) {
      EXPECT_TRUE(any_line_has(client_->console(name), "stage-2 TLB flush, generation")) << name;
    }
  }
}

}  // namespace
}  // namespace hvmm::testing
