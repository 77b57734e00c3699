// End-to-end: VMs of the bundled guest kernel under the real hvmmd, each in its VM process.
// Two VMs run side by side with different VMIDs; a VM process killed with SIGKILL is reported
// (signal, last console lines) while the other VM keeps answering; stop and delete.
#include <signal.h>

#include <gtest/gtest.h>

#include <set>

#include "daemon_test.h"
#include "guest_vms.h"

namespace hvmm::e2e {
namespace {

using std::chrono::seconds;

class VmLifecycle : public DaemonTest {};

// The names and states List reports.
std::map<std::string, v1::VmState> listed(Api& api) {
  auto reply = call(*api.vm, &v1::VmService::Stub::List, v1::ListVmsRequest{});
  EXPECT_TRUE(reply.ok()) << describe(reply.status);
  std::map<std::string, v1::VmState> states;
  for (const v1::Vm& vm : reply.response.vms()) {
    states[vm.name()] = vm.state();
  }
  return states;
}

// Two guest-kernel VMs run at once, each in its own process with its own VMID, both listed
// with memory figures; stopping one ends it with the guest's status and releases its VMID;
// deleting a running VM needs force; a deleted VM is NOT_FOUND.
TEST_F(VmLifecycle, TwoVmsRunTheBundledGuestWithDifferentVmids) {
  auto a = start_guest_vm(api(), "alpha", guest_spec(128 * kMiB));
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto b = start_guest_vm(api(), "beta", guest_spec(128 * kMiB));
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(a->state(), v1::VM_STATE_RUNNING);
  EXPECT_EQ(b->state(), v1::VM_STATE_RUNNING);
  EXPECT_NE(a->vmid(), 0u);
  EXPECT_NE(b->vmid(), 0u);
  EXPECT_NE(a->vmid(), b->vmid()) << "two running VMs share a VMID";
  EXPECT_GT(a->pid(), 0);
  EXPECT_GT(b->pid(), 0);
  EXPECT_NE(a->pid(), b->pid()) << "each VM runs in its own process";
  EXPECT_NE(a->pid(), daemon().pid());
  EXPECT_EQ(a->memory().memory_bytes(), 128 * kMiB);
  EXPECT_GT(a->memory().host_rss_bytes(), 0u);

  auto list = call(*api().vm, &v1::VmService::Stub::List, v1::ListVmsRequest{});
  ASSERT_TRUE(list.ok()) << describe(list.status);
  ASSERT_EQ(list.response.vms_size(), 2);
  std::set<uint32_t> vmids;
  for (const v1::Vm& vm : list.response.vms()) {
    EXPECT_EQ(vm.state(), v1::VM_STATE_RUNNING) << vm.name();
    EXPECT_GT(vm.memory().host_rss_bytes(), 0u) << vm.name();
    vmids.insert(vm.vmid());
  }
  EXPECT_EQ(vmids.size(), 2u);

  auto info =
      call(*api().daemon, &v1::DaemonService::Stub::GetDaemonInfo, v1::GetDaemonInfoRequest{});
  ASSERT_TRUE(info.ok()) << describe(info.status);
  EXPECT_EQ(info.response.vms(), 2u);
  EXPECT_EQ(info.response.running_vms(), 2u);
  EXPECT_EQ(info.response.vmid_bits(), 8u);
  EXPECT_EQ(info.response.pid(), daemon().pid());

  v1::StopVmRequest stop;
  stop.set_name("alpha");
  stop.set_grace_ms(60000);
  auto stopped = call(*api().vm, &v1::VmService::Stub::Stop, stop, seconds(120));
  ASSERT_TRUE(stopped.ok()) << describe(stopped.status);
  auto ended = wait_for_vm(
      api(), "alpha", [](const v1::Vm& vm) { return vm.state() == v1::VM_STATE_STOPPED; },
      seconds(120));
  ASSERT_TRUE(ended.ok()) << ended.error().message;
  EXPECT_EQ(ended->vmid(), 0u) << "a stopped VM holds no VMID";
  EXPECT_EQ(ended->pid(), 0);
  EXPECT_TRUE(ended->exit().has_status()) << ended->exit().reason();
  EXPECT_FALSE(ended->exit().has_signal())
      << "a graceful stop is not a kill: " << ended->exit().reason();

  v1::DeleteVmRequest remove;
  remove.set_name("alpha");
  auto deleted = call(*api().vm, &v1::VmService::Stub::Delete, remove);
  ASSERT_TRUE(deleted.ok()) << describe(deleted.status);
  v1::GetVmRequest get;
  get.set_name("alpha");
  auto gone = call(*api().vm, &v1::VmService::Stub::Get, get);
  EXPECT_EQ(gone.status.error_code(), grpc::StatusCode::NOT_FOUND) << describe(gone.status);

  remove.set_name("beta");
  auto refused = call(*api().vm, &v1::VmService::Stub::Delete, remove);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << describe(refused.status);
  EXPECT_EQ(listed(api()), (std::map<std::string, v1::VmState>{{"beta", v1::VM_STATE_RUNNING}}));
  remove.set_force(true);
  auto forced = call(*api().vm, &v1::VmService::Stub::Delete, remove, seconds(120));
  ASSERT_TRUE(forced.ok()) << describe(forced.status);
  EXPECT_TRUE(listed(api()).empty());
}

// A VM process killed with SIGKILL is reported: FAILED (or STOPPED) with exit.signal 9 and
// the last console lines; its VMID is released and it is not restarted. The other VM keeps
// running and answering, and the daemon keeps serving.
TEST_F(VmLifecycle, KilledVmProcessIsReportedAndTheOtherVmKeepsAnswering) {
  auto victim = start_guest_vm(api(), "victim", guest_spec(128 * kMiB));
  ASSERT_TRUE(victim.ok()) << victim.error().message;
  auto survivor = start_guest_vm(api(), "survivor", guest_spec(128 * kMiB));
  ASSERT_TRUE(survivor.ok()) << survivor.error().message;

  ASSERT_EQ(::kill(victim->pid(), SIGKILL), 0);
  auto reported = wait_for_vm(
      api(), "victim",
      [](const v1::Vm& vm) {
        return vm.state() == v1::VM_STATE_FAILED || vm.state() == v1::VM_STATE_STOPPED;
      },
      seconds(60));
  ASSERT_TRUE(reported.ok()) << reported.error().message;
  EXPECT_TRUE(reported->exit().has_signal()) << reported->exit().reason();
  EXPECT_EQ(reported->exit().signal(), SIGKILL) << reported->exit().reason();
  EXPECT_FALSE(reported->exit().has_status());
  EXPECT_FALSE(reported->exit().reason().empty());
  EXPECT_GT(reported->exit().last_console_lines_size(), 0)
      << "the guest printed its boot banner before the kill";
  EXPECT_LE(reported->exit().last_console_lines_size(), 20);
  EXPECT_EQ(reported->vmid(), 0u);
  EXPECT_EQ(reported->pid(), 0);

  // The survivor: same process, same VMID, its guest still does work.
  v1::StartWorkloadRequest workload;
  workload.set_name("survivor");
  workload.set_kind(v1::WORKLOAD_KIND_TOUCH_RANDOM);
  workload.set_bytes(4 * kMiB);
  workload.set_seed(7);
  auto worked = call(*api().guest, &v1::GuestService::Stub::StartWorkload, workload, seconds(120));
  ASSERT_TRUE(worked.ok()) << describe(worked.status);
  EXPECT_EQ(worked.response.pages(), 4 * kMiB / kPage);
  auto stats = memory_stats(api(), "survivor");
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  v1::GetVmRequest get;
  get.set_name("survivor");
  auto still = call(*api().vm, &v1::VmService::Stub::Get, get);
  ASSERT_TRUE(still.ok()) << describe(still.status);
  EXPECT_EQ(still.response.vm().state(), v1::VM_STATE_RUNNING);
  EXPECT_EQ(still.response.vm().pid(), survivor->pid());
  EXPECT_EQ(still.response.vm().vmid(), survivor->vmid());
  EXPECT_TRUE(daemon().running());

  // Nothing restarts the victim behind the user's back.
  std::this_thread::sleep_for(seconds(2));
  get.set_name("victim");
  auto later = call(*api().vm, &v1::VmService::Stub::Get, get);
  ASSERT_TRUE(later.ok()) << describe(later.status);
  EXPECT_EQ(later.response.vm().state(), reported->state());
  EXPECT_EQ(later.response.vm().pid(), 0);
}

}  // namespace
}  // namespace hvmm::e2e
