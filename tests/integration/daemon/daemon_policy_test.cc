// The host memory policy in the real hvmmd, with stand-in VM processes whose memory figures
// and balloon follow what the policy asks (fake.working_set=, fake.balloon_stuck=1) and a
// host-meminfo file the test rewrites: the idle VM gives first, the busy one keeps its working
// set, a stuck balloon leads to RECLAIM on a VM with reclaim, relaxing the target gives memory
// back; decisions in GetHostPolicy, WatchDecisions and the log.
#include <fstream>
#include <optional>
#include <thread>

#include "daemon_client.h"

namespace hvmm::testing {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kMemory = 256 * kMiB;

class Policy : public ::testing::Test {
 protected:
  Policy() {
    meminfo_ = dir_.path + "/meminfo";
    pressure_ = dir_.path + "/pressure";
    set_available(8192 * kMiB);
    std::ofstream(pressure_) << "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                             << "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    auto options = fake_daemon_options();
    options.extra_config =
        "policy-enabled = true\n"
        "policy-min-available = \"1G\"\n"
        // A VM answers a round within half the interval: 200 ms leaves room for a loaded CI
        // machine (a VM that misses a round is left out of it).
        "policy-interval-ms = 400\n"
        "policy-step = \"32M\"\n"
        "policy-hold-rounds = 2\n"
        "policy-balloon-timeout-ms = 300\n"
        "host-meminfo = \"" +
        meminfo_ + "\"\nhost-pressure = \"" + pressure_ + "\"\n";
    daemon_ = std::make_unique<DaemonHarness>(options);
  }

  void SetUp() override {
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
    client_ = std::make_unique<DaemonClient>(daemon_->channel());
  }

  void set_available(uint64_t bytes) {
    std::string temporary = meminfo_ + ".new";
    std::ofstream(temporary) << "MemTotal:       16777216 kB\n"
                             << "MemFree:         1000000 kB\n"
                             << "MemAvailable:    " << bytes / 1024 << " kB\n";
    std::rename(temporary.c_str(), meminfo_.c_str());  // never a half-written file
  }

  v1::Vm run(const std::string& name, const std::string& cmdline,
             std::optional<std::string> reclaim = std::nullopt, int32_t priority = 0) {
    v1::VmSpec spec;
    spec.set_cmdline(cmdline);
    spec.set_memory_bytes(kMemory);
    if (reclaim) {
      spec.set_reclaim_policy(*reclaim);
    }
    spec.mutable_policy()->set_priority(priority);
    grpc::Status created = client_->create(name, spec, true);
    EXPECT_TRUE(created.ok()) << created.error_message();
    EXPECT_TRUE(client_->wait_for_state(name, v1::VM_STATE_RUNNING));
    return client_->get(name);
  }

  v1::GetHostPolicyResponse get_policy() {
    v1::GetHostPolicyResponse response;
    grpc::Status status = client_->policy->GetHostPolicy(client_->context().get(),
                                                         v1::GetHostPolicyRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // Wait until `done` holds for the policy's status (false after `timeout`).
  template <typename Done>
  bool wait_for(Done done, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done(get_policy())) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  static bool has_action(const v1::GetHostPolicyResponse& status, v1::PolicyAction action,
                         const std::string& vm = "") {
    for (const auto& decision : status.recent()) {
      if (decision.action() == action && (vm.empty() || decision.vm() == vm)) {
        return true;
      }
    }
    return false;
  }

  v1::MemoryStats stats(const std::string& name) {
    v1::MemoryStats out;
    grpc::Status status = client_->stats(name, &out);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return out;
  }

  TempDir dir_;
  std::string meminfo_;
  std::string pressure_;
  std::unique_ptr<DaemonHarness> daemon_;
  std::unique_ptr<DaemonClient> client_;
};

// Two VMs, one idle and one busy: the idle one gives first, the busy one keeps its working
// set; relaxed, the memory returns. Every decision is in GetHostPolicy, WatchDecisions and
// the log.
TEST_F(Policy, IdleGivesFirstBusyKeepsItsWorkingSetRelaxedGivesBack) {
  run("idle", "fake.working_set=16777216");
  run("busy", "fake.working_set=209715200");
  ASSERT_TRUE(wait_for([](const auto& s) { return s.vms_size() == 2; }));
  EXPECT_EQ(get_policy().state(), v1::POLICY_STATE_MET);

  // A watcher from the start sees the decisions live.
  v1::WatchPolicyDecisionsRequest watch;
  auto watch_context = DaemonClient::context(std::chrono::seconds(60));
  auto reader = client_->policy->WatchDecisions(watch_context.get(), watch);
  std::vector<v1::PolicyDecision> streamed;
  std::thread watcher([&] {
    v1::PolicyDecisionEvent event;
    while (reader->Read(&event)) {
      streamed.push_back(event.decision());
    }
  });

  set_available(1024 * kMiB - 24 * kMiB);
  ASSERT_TRUE(wait_for([](const auto& s) { return has_action(s, v1::POLICY_ACTION_NOTHING_LEFT); }))
      << get_policy().DebugString();
  v1::GetHostPolicyResponse taken = get_policy();
  ASSERT_GT(taken.recent_size(), 1);
  EXPECT_EQ(taken.recent(0).action(), v1::POLICY_ACTION_INFLATE);
  EXPECT_EQ(taken.recent(0).vm(), "idle")
      << "the idle VM gives first: " << taken.recent(0).reason();
  EXPECT_NE(taken.recent(0).reason().find("available"), std::string::npos);
  EXPECT_EQ(taken.state(), v1::POLICY_STATE_TAKING);
  // The busy VM keeps its working set; the idle one stops at its floor (a quarter of RAM).
  const v1::MemoryStats busy = stats("busy");
  EXPECT_GE(kMemory - busy.balloon().actual_bytes(), 200 * kMiB);
  const v1::MemoryStats idle = stats("idle");
  EXPECT_EQ(kMemory - idle.balloon().actual_bytes(), kMemory / 4);
  for (const auto& vm : taken.vms()) {
    EXPECT_EQ(vm.idle_source(), "guest-stats") << vm.name();
    EXPECT_GT(vm.taken_balloon_bytes(), 0u) << vm.name();
  }

  // Relaxed: after the hold everything comes back, the user's targets (0) again.
  set_available(8192 * kMiB);
  ASSERT_TRUE(wait_for([](const auto& s) {
    return s.state() == v1::POLICY_STATE_MET && has_action(s, v1::POLICY_ACTION_DEFLATE);
  })) << get_policy().DebugString();
  EXPECT_EQ(stats("busy").balloon().target_bytes(), 0u);
  EXPECT_EQ(stats("idle").balloon().target_bytes(), 0u);

  watch_context->TryCancel();
  watcher.join();
  bool streamed_inflate = false;
  bool streamed_deflate = false;
  for (const auto& decision : streamed) {
    streamed_inflate |= decision.action() == v1::POLICY_ACTION_INFLATE;
    streamed_deflate |= decision.action() == v1::POLICY_ACTION_DEFLATE;
  }
  EXPECT_TRUE(streamed_inflate && streamed_deflate) << streamed.size() << " streamed";
  for (size_t i = 1; i < streamed.size(); ++i) {
    EXPECT_EQ(streamed[i].sequence(), streamed[i - 1].sequence() + 1);
  }

  daemon_->stop();
  const std::string log = daemon_->log();
  EXPECT_NE(log.find("policy decision vm=idle action=INFLATE"), std::string::npos) << log;
  EXPECT_NE(log.find("action=DEFLATE"), std::string::npos);
  EXPECT_NE(log.find("action=NOTHING_LEFT"), std::string::npos);
}

// A balloon that does not move: once balloon_timeout_ms has passed, its VM (which has
// reclaim) is reclaimed from; relaxed, reclaim stops and the VM's own policy is back.
TEST_F(Policy, StuckBalloonIsReclaimedThenRestored) {
  const std::string own = "period=1s,cold=120";
  run("stuck", "fake.balloon_stuck=1 fake.working_set=33554432", own);
  set_available(1024 * kMiB - 24 * kMiB);
  ASSERT_TRUE(wait_for([](const auto& s) {
    return has_action(s, v1::POLICY_ACTION_RECLAIM, "stuck");
  })) << get_policy().DebugString();
  v1::GetHostPolicyResponse status = get_policy();
  EXPECT_TRUE(has_action(status, v1::POLICY_ACTION_INFLATE, "stuck"));
  ASSERT_EQ(status.vms_size(), 1);
  EXPECT_FALSE(status.vms(0).balloon_cooperates());
  EXPECT_TRUE(status.vms(0).reclaim_available());
  EXPECT_EQ(status.vms(0).idle_source(), "working-set");
  v1::MemoryStats during = stats("stuck");
  EXPECT_GT(during.reclaim().pages_reclaimed(), 0u);
  EXPECT_NE(during.reclaim().policy().find("target="), std::string::npos);

  set_available(8192 * kMiB);
  ASSERT_TRUE(wait_for([](const auto& s) {
    return has_action(s, v1::POLICY_ACTION_STOP_RECLAIM, "stuck") &&
           s.state() == v1::POLICY_STATE_MET;
  })) << get_policy().DebugString();
  v1::MemoryStats after = stats("stuck");
  EXPECT_EQ(after.reclaim().policy(), own);
  EXPECT_EQ(after.balloon().target_bytes(), 0u);
}

// SetHostPolicy replaces the policy (defaults filled in); off gives back all it took; dry run
// only reports.
TEST_F(Policy, SetHostPolicyOffGivesBackDryRunOnlyReports) {
  run("a", "fake.working_set=16777216");
  v1::GetHostPolicyResponse initial = get_policy();
  EXPECT_TRUE(initial.policy().enabled());
  EXPECT_EQ(initial.policy().min_available_bytes(), 1024 * kMiB);
  EXPECT_EQ(initial.policy().step_bytes(), 32 * kMiB);
  EXPECT_DOUBLE_EQ(initial.policy().hysteresis(), 0.1);

  set_available(1024 * kMiB - 24 * kMiB);
  ASSERT_TRUE(wait_for([this](const auto&) { return stats("a").balloon().target_bytes() > 0; }));

  v1::SetHostPolicyRequest off;
  *off.mutable_policy() = initial.policy();
  off.mutable_policy()->set_enabled(false);
  v1::SetHostPolicyResponse answer;
  ASSERT_TRUE(client_->policy->SetHostPolicy(client_->context().get(), off, &answer).ok());
  EXPECT_FALSE(answer.policy().enabled());
  ASSERT_TRUE(wait_for([](const auto& s) { return s.state() == v1::POLICY_STATE_OFF; }));
  ASSERT_TRUE(wait_for([this](const auto&) { return stats("a").balloon().target_bytes() == 0; }));

  v1::SetHostPolicyRequest dry = off;
  dry.mutable_policy()->set_enabled(true);
  dry.mutable_policy()->set_dry_run(true);
  dry.mutable_policy()->set_hysteresis(0);  // the default again
  ASSERT_TRUE(client_->policy->SetHostPolicy(client_->context().get(), dry, &answer).ok());
  EXPECT_DOUBLE_EQ(answer.policy().hysteresis(), 0.1);
  ASSERT_TRUE(wait_for([](const auto& s) {
    return !s.recent().empty() && s.recent(s.recent_size() - 1).dry_run();
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(stats("a").balloon().target_bytes(), 0u) << "a dry run acted";
}

}  // namespace
}  // namespace hvmm::testing
