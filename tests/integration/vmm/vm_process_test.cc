// The VM process `hvmm-vm` over its channel (proto/hvmm/supervisor/v1/channel.proto), driven
// by a harness that plays the daemon: what it does without KVM (a bad Launch, no /dev/kvm,
// the daemon leaving before the Launch), that it never loads gRPC, and under KVM the whole
// life of a guest-kernel VM (vm_process_scenario.h).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "vm_process_scenario.h"

namespace hvmm::testing {
namespace {

// The first Failed or Started event.
Result<supervisor::Event> first_outcome(VmProcessHarness& vm) {
  return vm.wait_event([](const supervisor::Event& e) { return e.has_failed() || e.has_started(); },
                       kStartTimeout);
}

// A spec the checks refuse before /dev/kvm is opened: Failed with INVALID_ARGUMENT naming
// the memory, exit status 120 (bad arguments), on any host.
TEST(VmProcess, BadSpecFailsBeforeKvm) {
  VmProcessHarness vm;
  supervisor::Launch launch = guest_kernel_launch("bad", 3, 4096);
  ASSERT_TRUE(vm.launch(launch).ok());
  auto outcome = first_outcome(vm);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message << "\n" << vm.output();
  ASSERT_TRUE(outcome->has_failed());
  EXPECT_EQ(outcome->failed().code(), kInvalidArgument);
  EXPECT_EQ(outcome->failed().exit_status(), 120);
  EXPECT_NE(outcome->failed().message().find("memory"), std::string::npos)
      << outcome->failed().message();
  const VmProcessExit exit = vm.wait_exit(kExitTimeout);
  EXPECT_TRUE(exit.exited);
  EXPECT_EQ(exit.status, 120);
}

// VMID 0 is reserved, and VMIDs are 16 bits at most: refused naming vmid.
TEST(VmProcess, VmidIsChecked) {
  for (uint32_t vmid : {0u, 0x10000u}) {
    VmProcessHarness vm;
    ASSERT_TRUE(vm.launch(guest_kernel_launch("vmid", vmid)).ok());
    auto outcome = first_outcome(vm);
    ASSERT_TRUE(outcome.ok()) << outcome.error().message;
    ASSERT_TRUE(outcome->has_failed());
    EXPECT_EQ(outcome->failed().code(), kInvalidArgument);
    EXPECT_EQ(outcome->failed().message().rfind("vmid:", 0), 0u) << outcome->failed().message();
    EXPECT_EQ(vm.wait_exit(kExitTimeout).status, 120);
  }
}

// A first message that is not a Launch: Failed naming the channel, status 120.
TEST(VmProcess, FirstMessageMustBeLaunch) {
  VmProcessHarness vm;
  supervisor::ToVm request;
  request.mutable_request()->set_id(1);
  request.mutable_request()->mutable_get_memory_stats();
  ASSERT_TRUE(vm.send(request).ok());
  auto outcome = first_outcome(vm);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  ASSERT_TRUE(outcome->has_failed());
  EXPECT_EQ(outcome->failed().message().rfind("channel:", 0), 0u) << outcome->failed().message();
  EXPECT_EQ(vm.wait_exit(kExitTimeout).status, 120);
}

// The daemon going away before the Launch ends the process at once.
TEST(VmProcess, ChannelClosedBeforeLaunchExits) {
  VmProcessHarness vm;
  vm.close_channel();
  const VmProcessExit exit = vm.wait_exit(kExitTimeout);
  EXPECT_TRUE(exit.exited) << "signal " << exit.signal;
  EXPECT_EQ(exit.status, 120);
}

// Without /dev/kvm: Failed with UNAVAILABLE naming /dev/kvm, exit status 121 (setup failed).
TEST(VmProcess, WithoutKvmFailsNamingDevKvm) {
  if (kvm_unavailable_reason().empty()) {
    GTEST_SKIP() << "/dev/kvm opens here: the no-KVM path is tested on hosts without it";
  }
  VmProcessHarness vm;
  ASSERT_TRUE(vm.launch(guest_kernel_launch("nokvm", 2)).ok());
  auto outcome = first_outcome(vm);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message << "\n" << vm.output();
  ASSERT_TRUE(outcome->has_failed()) << vm.output();
  EXPECT_EQ(outcome->failed().code(), kUnavailable);
  EXPECT_EQ(outcome->failed().exit_status(), 121);
  EXPECT_NE(outcome->failed().message().find("/dev/kvm"), std::string::npos)
      << outcome->failed().message();
  const VmProcessExit exit = vm.wait_exit(kExitTimeout);
  EXPECT_TRUE(exit.exited);
  EXPECT_EQ(exit.status, 121);
  EXPECT_NE(vm.output().find("/dev/kvm"), std::string::npos) << "stderr says it too";
}

// The VM process maps no gRPC library, and starts small (ENVIRONMENT.md: gRPC alone costs
// about 12 MiB of RSS at start-up). Read while it waits for its Launch.
TEST(VmProcess, DoesNotLoadGrpc) {
  VmProcessHarness vm;
  std::string maps;
  std::string status;
  for (int attempt = 0; attempt < 400; ++attempt) {  // until the dynamic loader is done
    maps = slurp("/proc/" + std::to_string(vm.pid()) + "/maps");
    if (maps.find("libprotobuf") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(Millis(10));
  }
  status = slurp("/proc/" + std::to_string(vm.pid()) + "/status");
  ASSERT_NE(maps.find("libprotobuf"), std::string::npos) << "the process did not start:\n" << maps;
  EXPECT_EQ(maps.find("grpc"), std::string::npos) << maps;
  std::istringstream lines(status);
  uint64_t rss_kib = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      rss_kib = std::stoull(line.substr(6));
    }
  }
  std::printf("hvmm-vm waiting for its Launch: VmRSS %llu KiB\n",
              static_cast<unsigned long long>(rss_kib));
  EXPECT_GT(rss_kib, 0u);
  EXPECT_LT(rss_kib, 12u * 1024) << "more than gRPC alone would cost";
}

// Under KVM: the whole life of a guest-kernel VM process, seccomp on.
TEST(VmProcess, WholeLifeUnderKvm) {
  HVMM_SKIP_WITHOUT_VM_PROCESS();
  TempPath swap("swap");
  VmProcessHarness vm;
  whole_life(vm, whole_life_launch(swap.path));
}

// The daemon closing the channel stops a running VM: the process exits on its own.
TEST(VmProcess, DaemonGoneStopsTheVm) {
  HVMM_SKIP_WITHOUT_VM_PROCESS();
  VmProcessHarness vm;
  ASSERT_NO_FATAL_FAILURE(launch_and_wait_started(vm, guest_kernel_launch("orphan", 9)));
  vm.close_channel();
  const VmProcessExit exit = vm.wait_exit(kExitTimeout);
  EXPECT_TRUE(exit.exited) << "signal " << exit.signal << "\n" << vm.output();
  EXPECT_EQ(exit.status, 129) << vm.output();
  EXPECT_NE(vm.output().find("the daemon closed the channel"), std::string::npos) << vm.output();
}

}  // namespace
}  // namespace hvmm::testing
