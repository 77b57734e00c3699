// The VM process's prepared state (warm start): Prepare builds the KVM VM, RAM, memslots and
// vCPUs and answers Prepared; the Launch that follows must match it and then runs the same
// guest-kernel life as a cold Launch (vm_process_scenario.h), with the Launch's VMID.
#include <gtest/gtest.h>

#include <string>

#include "vm_process_scenario.h"

namespace hvmm::testing {
namespace {

supervisor::ToVm prepare_message(uint64_t memory, uint32_t vcpus) {
  supervisor::ToVm message;
  message.mutable_prepare()->set_memory_bytes(memory);
  message.mutable_prepare()->set_vcpus(vcpus);
  return message;
}

Result<supervisor::Event> prepared_or_failed(VmProcessHarness& vm) {
  return vm.wait_event(
      [](const supervisor::Event& e) { return e.has_prepared() || e.has_failed(); }, kStartTimeout);
}

// A Prepare of a size no VM can have is refused before /dev/kvm is opened, naming the field.
TEST(WarmVmProcess, BadPrepareFailsBeforeKvm) {
  for (auto [memory, vcpus, field] :
       {std::tuple{uint64_t{4096}, 1u, "memory_bytes"}, std::tuple{256 * kMiB, 0u, "vcpus"},
        std::tuple{256 * kMiB, 1000u, "vcpus"}}) {
    VmProcessHarness vm;
    ASSERT_TRUE(vm.send(prepare_message(memory, vcpus)).ok());
    auto outcome = prepared_or_failed(vm);
    ASSERT_TRUE(outcome.ok()) << outcome.error().message << "\n" << vm.output();
    ASSERT_TRUE(outcome->has_failed()) << field;
    EXPECT_EQ(outcome->failed().code(), kInvalidArgument);
    EXPECT_EQ(outcome->failed().exit_status(), 120);
    EXPECT_NE(outcome->failed().message().find(field), std::string::npos)
        << outcome->failed().message();
    EXPECT_EQ(vm.wait_exit(kExitTimeout).status, 120);
  }
}

// Prepared, then the daemon leaves (a pool process at shutdown): the process ends, 120.
TEST(WarmVmProcess, ChannelClosedAfterPrepareExits) {
  HVMM_SKIP_WITHOUT_VM_PROCESS();
  VmProcessHarness vm;
  ASSERT_TRUE(vm.send(prepare_message(256 * kMiB, 1)).ok());
  auto outcome = prepared_or_failed(vm);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message << "\n" << vm.output();
  ASSERT_TRUE(outcome->has_prepared()) << outcome->failed().message();
  EXPECT_EQ(outcome->prepared().memory_bytes(), 256 * kMiB);
  EXPECT_EQ(outcome->prepared().vcpus(), 1u);
  vm.close_channel();
  const VmProcessExit exit = vm.wait_exit(kExitTimeout);
  EXPECT_TRUE(exit.exited) << "signal " << exit.signal;
  EXPECT_EQ(exit.status, 120);
}

// A Launch that does not match what was prepared fails naming the field, status 120.
TEST(WarmVmProcess, LaunchMustMatchWhatWasPrepared) {
  HVMM_SKIP_WITHOUT_VM_PROCESS();
  struct Case {
    const char* field;
    void (*change)(supervisor::Launch&);
  };
  const Case cases[] = {
      {"memory_bytes",
       [](supervisor::Launch& l) { l.mutable_spec()->set_memory_bytes(128 * kMiB); }},
      {"vcpus", [](supervisor::Launch& l) { l.mutable_spec()->set_vcpus(2); }},
      {"dirty_tracking",
       [](supervisor::Launch& l) { l.mutable_spec()->set_dirty_tracking("log"); }},
  };
  for (const Case& bad : cases) {
    VmProcessHarness vm;
    ASSERT_TRUE(vm.send(prepare_message(256 * kMiB, 1)).ok());
    auto prepared = prepared_or_failed(vm);
    ASSERT_TRUE(prepared.ok() && prepared->has_prepared()) << vm.output();
    supervisor::Launch launch = guest_kernel_launch("mismatch", 2);
    bad.change(launch);
    ASSERT_TRUE(vm.launch(launch).ok());
    auto outcome =
        vm.wait_event([](const supervisor::Event& e) { return e.has_started() || e.has_failed(); },
                      kStartTimeout);
    ASSERT_TRUE(outcome.ok()) << outcome.error().message << "\n" << vm.output();
    ASSERT_TRUE(outcome->has_failed()) << bad.field;
    EXPECT_EQ(outcome->failed().code(), kFailedPrecondition) << outcome->failed().message();
    EXPECT_NE(outcome->failed().message().find(bad.field), std::string::npos)
        << outcome->failed().message();
    EXPECT_EQ(vm.wait_exit(kExitTimeout).status, 120) << bad.field;
  }
}

// A prepared VM process, launched, lives the cold one's life: the guest kernel boots and
// serves, memory figures, balloon with notifier events, a dump, shootdowns, an unbacked
// probe whose fault names the Launch's VMID, bad requests, and shutdown with the status.
// Its first run is reported after Started.
TEST(WarmVmProcess, PreparedVmRunsTheGuestKernelLikeAColdOne) {
  HVMM_SKIP_WITHOUT_VM_PROCESS();
  VmProcessHarness vm;
  ASSERT_TRUE(vm.send(prepare_message(256 * kMiB, 1)).ok());
  auto prepared = prepared_or_failed(vm);
  ASSERT_TRUE(prepared.ok()) << prepared.error().message << "\n" << vm.output();
  ASSERT_TRUE(prepared->has_prepared()) << prepared->failed().message() << "\n" << vm.output();
  EXPECT_EQ(prepared->prepared().pid(), vm.pid());
  const supervisor::Launch launch = guest_kernel_launch("warm", 9);
  ASSERT_NO_FATAL_FAILURE(launch_and_wait_started(vm, launch));
  auto first_run =
      vm.wait_event([](const supervisor::Event& e) { return e.has_first_run(); }, kBootTimeout);
  ASSERT_TRUE(first_run.ok()) << first_run.error().message;
  EXPECT_GT(first_run->first_run().unix_ns(), 0u);
  ASSERT_NO_FATAL_FAILURE(wait_for_guest(vm));
  ASSERT_NO_FATAL_FAILURE(memory_stats(vm, 256 * kMiB, false));
  ASSERT_NO_FATAL_FAILURE(balloon_with_notifier_events(vm, 32 * kMiB));
  ASSERT_NO_FATAL_FAILURE(dump_two_pages(vm));
  ASSERT_NO_FATAL_FAILURE(shootdowns(vm));
  ASSERT_NO_FATAL_FAILURE(unbacked_probe(vm, launch));
  ASSERT_NO_FATAL_FAILURE(bad_requests(vm));
  ASSERT_NO_FATAL_FAILURE(shut_down(vm, 0));
}

}  // namespace
}  // namespace hvmm::testing
