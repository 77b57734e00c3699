// hvmmd supervising VM processes: starts that fail, processes killed with SIGKILL, stops with
// and without grace, guests that exit, Delete of a running VM, SIGTERM of the daemon. The VM
// processes are hvmm-fake-vm (or the real hvmm-vm where it is built and KVM is absent).
#include <signal.h>

#include <filesystem>

#include "daemon_client.h"

namespace hvmm::testing {
namespace {

class Supervision : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.start()) << daemon_.log();
    client_ = std::make_unique<DaemonClient>(daemon_.channel());
  }

  // The daemon still serves: List answers.
  void expect_serving() {
    v1::ListVmsResponse list;
    grpc::Status status = client_->list(&list);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  DaemonHarness daemon_{fake_daemon_options()};
  std::unique_ptr<DaemonClient> client_;
};

bool alive(pid_t pid) {
  return pid > 0 && ::kill(pid, 0) == 0;
}

// Without /dev/kvm the VM process cannot build the VM: the VM is FAILED, its exit names
// /dev/kvm and the status 121, and the daemon goes on. The real hvmm-vm is used when it is
// built (and KVM is really absent); otherwise the stand-in fails the same way.
TEST(SupervisionNoKvm, StartWithoutKvmFailsNamingDevKvm) {
  std::string real = HVMM_VM_BINARY;
  bool use_real =
      !real.empty() && std::filesystem::exists(real) && !kvm_unavailable_reason().empty();
  auto options = fake_daemon_options();
  if (use_real) {
    options.vm_process = real;
  }
  DaemonHarness daemon(options);
  ASSERT_TRUE(daemon.start()) << daemon.log();
  DaemonClient client(daemon.channel());
  v1::VmSpec spec;
  spec.set_memory_bytes(64 << 20);
  spec.set_cmdline(use_real ? "" : "fake.fail=kvm");
  ASSERT_TRUE(client.create("nokvm", spec, false).ok());
  v1::StartVmRequest request;
  request.set_name("nokvm");
  request.set_wait(true);
  v1::StartVmResponse response;
  ASSERT_TRUE(client.vms->Start(client.context().get(), request, &response).ok());
  const v1::Vm& vm = response.vm();
  EXPECT_EQ(vm.state(), v1::VM_STATE_FAILED) << vm.DebugString();
  EXPECT_EQ(vm.exit().status(), 121) << vm.DebugString();
  EXPECT_NE(vm.exit().reason().find("/dev/kvm"), std::string::npos) << vm.exit().reason();
  EXPECT_NE(vm.exit().reason().find("121"), std::string::npos) << vm.exit().reason();
  EXPECT_EQ(vm.vmid(), 0u) << "a VM that does not run holds no VMID";
  EXPECT_EQ(vm.pid(), 0);
  // It can be tried again (nothing restarts it by itself) and the daemon keeps serving.
  ASSERT_TRUE(client.vms->Start(client.context().get(), request, &response).ok());
  EXPECT_EQ(response.vm().state(), v1::VM_STATE_FAILED);
  v1::ListVmsResponse list;
  ASSERT_TRUE(client.list(&list).ok());
  EXPECT_EQ(list.vms_size(), 1);
  if (!use_real) {
    client.run("other");  // the stand-in can run one; the real one cannot without KVM
    EXPECT_EQ(client.get("other").state(), v1::VM_STATE_RUNNING);
  }
}

// A VM process that breaks the channel protocol (a frame that does not parse, an absurd
// length) is killed and reported; the daemon and the other VM go on.
TEST_F(Supervision, ProtocolBreakersAreKilledAndReported) {
  client_->run("bystander");
  for (const char* how : {"parse", "length"}) {
    std::string name = std::string("breaker-") + how;
    v1::VmSpec spec;
    spec.set_cmdline(std::string("fake.garbage=") + how);
    ASSERT_TRUE(client_->create(name, spec, true).ok());
    ASSERT_TRUE(client_->wait_for_state(name, v1::VM_STATE_FAILED)) << how;
    v1::Vm vm = client_->get(name);
    EXPECT_NE(vm.exit().reason().find("broke the channel protocol"), std::string::npos)
        << vm.exit().reason();
  }
  EXPECT_TRUE(client_->stats("bystander", nullptr).ok());
  EXPECT_NE(daemon_.log().find("vm process broke the channel protocol"), std::string::npos);
}

// Console bytes that are not UTF-8 reach clients replaced, not as a broken message.
TEST_F(Supervision, ConsoleBytesThatAreNotUtf8AreReplaced) {
  client_->run("binary", "fake.binary_console=1");
  auto lines = client_->console("binary");
  EXPECT_TRUE(any_line_has(lines, "fake-vm binary: \xEF\xBF\xBD\xEF\xBF\xBD")) << lines.size();
  EXPECT_TRUE(any_line_has(lines, " end"));
}

// A VM process that never says Started is killed after the start timeout: FAILED, saying so.
TEST(SupervisionStartTimeout, HungStartIsKilled) {
  auto options = fake_daemon_options();
  options.extra_args = {"--start-timeout-ms", "300"};
  DaemonHarness daemon(options);
  ASSERT_TRUE(daemon.start()) << daemon.log();
  DaemonClient client(daemon.channel());
  v1::VmSpec spec;
  spec.set_cmdline("fake.hang_start=1");
  ASSERT_TRUE(client.create("hung", spec, false).ok());
  v1::StartVmRequest request;
  request.set_name("hung");
  request.set_wait(true);
  v1::StartVmResponse response;
  ASSERT_TRUE(client.vms->Start(client.context().get(), request, &response).ok());
  EXPECT_EQ(response.vm().state(), v1::VM_STATE_FAILED) << response.vm().DebugString();
  EXPECT_EQ(response.vm().exit().signal(), SIGKILL);
  EXPECT_NE(response.vm().exit().reason().find("did not build its VM within 300 ms"),
            std::string::npos)
      << response.vm().exit().reason();
  EXPECT_TRUE(any_line_has({response.vm().exit().last_console_lines().begin(),
                            response.vm().exit().last_console_lines().end()},
                           "hanging before Started"));
}

// A VM process killed with SIGKILL is reported with the signal and its last console lines,
// its VMID is released, and the other VM is untouched.
TEST_F(Supervision, KilledProcessIsReportedAndOthersGoOn) {
  v1::Vm victim = client_->run("victim");
  v1::Vm bystander = client_->run("bystander");
  ASSERT_GT(victim.pid(), 0);
  EXPECT_NE(victim.vmid(), bystander.vmid());
  ASSERT_EQ(::kill(victim.pid(), SIGKILL), 0);
  ASSERT_TRUE(client_->wait_for_state("victim", v1::VM_STATE_FAILED)) << daemon_.log();
  v1::Vm dead = client_->get("victim");
  EXPECT_EQ(dead.exit().signal(), SIGKILL) << dead.DebugString();
  EXPECT_FALSE(dead.exit().has_status());
  EXPECT_NE(dead.exit().reason().find("SIGKILL"), std::string::npos) << dead.exit().reason();
  EXPECT_TRUE(any_line_has(
      {dead.exit().last_console_lines().begin(), dead.exit().last_console_lines().end()},
      "fake-vm victim: booted"))
      << dead.DebugString();
  EXPECT_EQ(dead.vmid(), 0u);
  EXPECT_EQ(dead.pid(), 0);
  v1::Vm still = client_->get("bystander");
  EXPECT_EQ(still.state(), v1::VM_STATE_RUNNING);
  EXPECT_EQ(still.pid(), bystander.pid());
  v1::MemoryStats stats;
  EXPECT_TRUE(client_->stats("bystander", &stats).ok());
  EXPECT_EQ(stats.name(), "bystander");
  EXPECT_NE(daemon_.log().find("vm ended"), std::string::npos);
}

// Stop: a guest that shuts down ends STOPPED with its status; one that ignores the request
// is killed when the grace runs out, and the reason says so.
TEST_F(Supervision, StopGracefullyThenByForce) {
  client_->run("polite");
  client_->run("stubborn", "fake.ignore_shutdown=1");
  v1::Vm polite;
  ASSERT_TRUE(client_->stop("polite", 5000, false, &polite).ok());
  EXPECT_EQ(polite.state(), v1::VM_STATE_STOPPED) << polite.DebugString();
  EXPECT_EQ(polite.exit().status(), 0);
  EXPECT_EQ(polite.exit().reason(), "guest exited with status 0");
  auto started = std::chrono::steady_clock::now();
  v1::Vm stubborn;
  ASSERT_TRUE(client_->stop("stubborn", 300, false, &stubborn).ok());
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(300));
  EXPECT_EQ(stubborn.state(), v1::VM_STATE_STOPPED) << stubborn.DebugString();
  EXPECT_EQ(stubborn.exit().signal(), SIGKILL);
  EXPECT_NE(stubborn.exit().reason().find("300 ms grace"), std::string::npos)
      << stubborn.exit().reason();
  // Stopping what is stopped names the state.
  grpc::Status again = client_->stop("polite");
  EXPECT_EQ(again.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(again.error_message().find("STOPPED"), std::string::npos) << again.error_message();
  // And a stopped VM starts again.
  v1::StartVmRequest request;
  request.set_name("polite");
  request.set_wait(true);
  v1::StartVmResponse response;
  ASSERT_TRUE(client_->vms->Start(client_->context().get(), request, &response).ok());
  EXPECT_EQ(response.vm().state(), v1::VM_STATE_RUNNING);
  EXPECT_FALSE(response.vm().has_exit()) << "a new run has no end yet";
}

// A guest that exits by itself ends STOPPED with the status it chose.
TEST_F(Supervision, GuestExitIsReported) {
  client_->run("short", "fake.exit_after_ms=200 fake.exit_status=7");
  ASSERT_TRUE(client_->wait_for_state("short", v1::VM_STATE_STOPPED)) << daemon_.log();
  v1::Vm vm = client_->get("short");
  EXPECT_EQ(vm.exit().status(), 7);
  EXPECT_EQ(vm.exit().reason(), "guest exited with status 7");
  EXPECT_GT(vm.exit().time_unix_ns(), vm.started_unix_ns());
}

// Delete with force kills a running VM and forgets it; without force it names the state.
TEST_F(Supervision, DeleteRunningVm) {
  v1::Vm vm = client_->run("doomed", "fake.ignore_shutdown=1");
  grpc::Status refused = client_->remove("doomed");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(refused.error_message().find("RUNNING"), std::string::npos);
  ASSERT_TRUE(client_->remove("doomed", true).ok());
  EXPECT_FALSE(alive(vm.pid()));
  v1::GetVmRequest request;
  request.set_name("doomed");
  v1::GetVmResponse response;
  EXPECT_EQ(client_->vms->Get(client_->context().get(), request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_FALSE(std::filesystem::exists(daemon_.state_dir() + "/vms/doomed"));
}

// Create with start runs the VM at once; the console history has its lines.
TEST_F(Supervision, CreateWithStartAndConsoleHistory) {
  v1::VmSpec spec;
  spec.set_memory_bytes(32 << 20);
  v1::Vm vm;
  ASSERT_TRUE(client_->create("quick", spec, true, &vm).ok());
  EXPECT_NE(vm.state(), v1::VM_STATE_CREATED);
  ASSERT_TRUE(client_->wait_for_state("quick", v1::VM_STATE_RUNNING));
  auto lines = client_->console("quick");
  EXPECT_TRUE(any_line_has(lines, "fake-vm quick: booted, vmid ")) << lines.size();
}

// A follower of the console gets the lines of the run and its stream ends with the VM.
TEST_F(Supervision, ConsoleFollowEndsWithTheVm) {
  client_->run("talker", "fake.exit_after_ms=500");
  v1::StreamConsoleRequest request;
  request.set_name("talker");
  request.set_follow(true);
  auto context = DaemonClient::context(std::chrono::seconds(10));
  auto reader = client_->vms->StreamConsole(context.get(), request);
  std::vector<std::string> lines;
  v1::ConsoleLine line;
  while (reader->Read(&line)) {
    lines.push_back(line.line());
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(any_line_has(lines, "guest exits with status 0")) << lines.size();
  EXPECT_EQ(client_->get("talker").state(), v1::VM_STATE_STOPPED);
}

// A VM process that does not answer: requests end at their deadline with DEADLINE_EXCEEDED,
// List still answers (without that VM's figures), the other VM still answers.
TEST_F(Supervision, SilentVmCostsOnlyItsOwnRequests) {
  client_->run("mute", "fake.silent=1");
  client_->run("chatty");
  auto started = std::chrono::steady_clock::now();
  grpc::Status status = client_->stats("mute", nullptr, std::chrono::milliseconds(300));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3));
  v1::ListVmsResponse list;
  ASSERT_TRUE(client_->list(&list).ok());
  ASSERT_EQ(list.vms_size(), 2);
  for (const v1::Vm& vm : list.vms()) {
    EXPECT_EQ(vm.has_memory(), vm.name() == "chatty") << vm.name();
  }
  EXPECT_TRUE(client_->stats("chatty", nullptr).ok());
}

// SIGTERM stops every VM (killing the ones that do not stop within the grace), removes the
// socket and exits 0.
TEST_F(Supervision, SigtermStopsEveryVm) {
  v1::Vm polite = client_->run("polite");
  v1::Vm stubborn = client_->run("stubborn", "fake.ignore_shutdown=1");
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(daemon_.stop(), 0) << daemon_.log();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  EXPECT_FALSE(alive(polite.pid()));
  EXPECT_FALSE(alive(stubborn.pid()));
  EXPECT_FALSE(std::filesystem::exists(daemon_.socket()));
  EXPECT_NE(daemon_.log().find("guest exited with status 0"), std::string::npos);
  EXPECT_NE(daemon_.log().find("did not stop within the 3000 ms grace"), std::string::npos)
      << daemon_.log();
}

}  // namespace
}  // namespace hvmm::testing
