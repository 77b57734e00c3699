// End-to-end: the host memory policy of the real hvmmd with two real VMs, one idle and one
// busy (it writes its memory all the time). A target on the VM processes' RSS below what they
// hold forces memory out: the idle VM gives first, the busy one keeps its working set and its
// data; the sum of RSS comes down. Relaxing the target gives the memory back (DEFLATE, the
// balloons back to their baseline). Every decision shows in GetHostPolicy.recent, in
// WatchDecisions, in the daemon's log, and through `hvmm policy` and `hvmm policy watch`.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <thread>

#include "cli.h"
#include "daemon_test.h"
#include "e2e_binaries.h"
#include "guest_vms.h"
#include "stream_reader.h"

namespace hvmm::e2e {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint64_t kVmMemory = 160 * kMiB;
constexpr uint64_t kFloor = 48 * kMiB;
// The busy VM's held data (verified at the end) and what it rewrites again and again.
constexpr uint64_t kBusyHeld = 16 * kMiB;
constexpr uint64_t kBusyLoop = 48 * kMiB;
// The idle VM touches this once and frees it (resident, free in the guest: the balloon's),
// and holds a little it never touches again (cold: reclaim's).
constexpr uint64_t kIdleTouched = 96 * kMiB;
constexpr uint64_t kIdleHeld = 16 * kMiB;
// Emulated inside the nested-KVM guest: rounds and balloons are 10-100 times slower.
constexpr milliseconds kConverge{300000};

// True for the actions that take memory.
bool takes(v1::PolicyAction action) {
  return action == v1::POLICY_ACTION_INFLATE || action == v1::POLICY_ACTION_RECLAIM;
}
bool gives(v1::PolicyAction action) {
  return action == v1::POLICY_ACTION_DEFLATE || action == v1::POLICY_ACTION_STOP_RECLAIM;
}

// A VM with a balloon asking for stats every second, and reclaim that measures the working
// set (3 one-second epochs) but takes nothing by itself (its RSS goal is all of RAM).
v1::VmSpec policy_vm_spec() {
  v1::VmSpec spec = guest_spec(kVmMemory);
  spec.mutable_balloon()->set_stats_interval_seconds(1);
  spec.set_reclaim_policy("target=100%,period=1s,cold=3");
  spec.mutable_policy()->set_floor_bytes(kFloor);
  return spec;
}

class Policy : public DaemonTest {
 protected:
  void TearDown() override {
    stop_busy();
    DaemonTest::TearDown();
  }

  Result<v1::StartWorkloadResponse> workload(const std::string& vm, uint64_t bytes, bool hold,
                                             uint64_t seed) {
    v1::StartWorkloadRequest request;
    request.set_name(vm);
    request.set_kind(v1::WORKLOAD_KIND_TOUCH_RANDOM);
    request.set_bytes(bytes);
    request.set_seed(seed);
    request.set_hold(hold);
    auto reply = call(*api().guest, &v1::GuestService::Stub::StartWorkload, request, seconds(200));
    if (!reply.ok()) {
      return status_error("StartWorkload on " + vm, reply.status);
    }
    return reply.response;
  }

  // The busy VM rewrites kBusyLoop bytes, over and over, until stop_busy().
  void start_busy() {
    busy_ = std::thread([this] {
      for (uint64_t seed = 100; !stop_.load(); ++seed) {
        if (!workload("busy", kBusyLoop, false, seed).ok()) {
          busy_errors_.fetch_add(1);
          std::this_thread::sleep_for(milliseconds(200));
        } else {
          busy_rounds_.fetch_add(1);
        }
      }
    });
  }
  void stop_busy() {
    stop_.store(true);
    if (busy_.joinable()) {
      busy_.join();
    }
  }

  Result<v1::GetHostPolicyResponse> get_policy() {
    auto reply = call(*api().policy, &v1::HostPolicyService::Stub::GetHostPolicy,
                      v1::GetHostPolicyRequest{});
    if (!reply.ok()) {
      return status_error("GetHostPolicy", reply.status);
    }
    return reply.response;
  }

  Result<v1::HostPolicy> set_policy(const v1::HostPolicy& policy) {
    v1::SetHostPolicyRequest request;
    *request.mutable_policy() = policy;
    auto reply = call(*api().policy, &v1::HostPolicyService::Stub::SetHostPolicy, request);
    if (!reply.ok()) {
      return status_error("SetHostPolicy", reply.status);
    }
    return reply.response.policy();
  }

  // GetHostPolicy polled until `done`; the last answer (done or not) for the assertions.
  Result<v1::GetHostPolicyResponse> wait_policy(
      const std::function<bool(const v1::GetHostPolicyResponse&)>& done, milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    v1::GetHostPolicyResponse last;
    while (std::chrono::steady_clock::now() < deadline) {
      auto got = get_policy();
      HVMM_TRY(got);
      last = *got;
      if (done(last)) {
        return last;
      }
      std::this_thread::sleep_for(milliseconds(500));
    }
    return make_error(ErrorCode::kUnavailable, "not within {} ms; last:\n{}", timeout.count(),
                      last.DebugString());
  }

  // RSS of both VM processes together, from their own memory stats.
  Result<uint64_t> sum_rss() {
    uint64_t sum = 0;
    for (const char* vm : {"idle", "busy"}) {
      auto stats = memory_stats(api(), vm);
      HVMM_TRY(stats);
      sum += stats->host().rss_bytes();
    }
    return sum;
  }

  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> busy_rounds_{0};
  std::atomic<uint64_t> busy_errors_{0};
  std::thread busy_;
};

// The policy's row of `vm` (nullptr when it has none).
const v1::VmPolicyStatus* vm_status(const v1::GetHostPolicyResponse& response,
                                    const std::string& vm) {
  for (const v1::VmPolicyStatus& status : response.vms()) {
    if (status.name() == vm) {
      return &status;
    }
  }
  return nullptr;
}

// The decisions in `events`, by sequence.
std::map<uint64_t, v1::PolicyDecision> by_sequence(
    const std::vector<v1::PolicyDecisionEvent>& events) {
  std::map<uint64_t, v1::PolicyDecision> decisions;
  for (const v1::PolicyDecisionEvent& event : events) {
    decisions[event.decision().sequence()] = event.decision();
  }
  return decisions;
}

// One line per decision, for failure messages.
std::string decisions_text(const std::map<uint64_t, v1::PolicyDecision>& decisions) {
  std::string text;
  for (const auto& [sequence, d] : decisions) {
    text += fmt::format("#{} {} {} {} bytes: {}{}\n", sequence, d.vm(),
                        v1::PolicyAction_Name(d.action()), d.bytes(), d.reason(),
                        d.error().empty() ? "" : " error: " + d.error());
  }
  return text;
}

// The whole story: measure, take (idle first, busy keeps its working set), give back.
TEST_F(Policy, IdleVmGivesFirstBusyVmKeepsItsWorkingSetAndMemoryReturns) {
  for (const char* vm : {"idle", "busy"}) {
    auto started = start_guest_vm(api(), vm, policy_vm_spec());
    ASSERT_TRUE(started.ok()) << started.error().message;
  }
  ASSERT_TRUE(workload("idle", kIdleTouched, false, 1).ok());
  auto idle_held = workload("idle", kIdleHeld, true, 2);
  ASSERT_TRUE(idle_held.ok()) << idle_held.error().message;
  auto busy_held = workload("busy", kBusyHeld, true, 3);
  ASSERT_TRUE(busy_held.ok()) << busy_held.error().message;
  start_busy();

  // Off, the policy still samples and measures: wait until the busy VM's working set shows.
  v1::HostPolicy policy;
  policy.set_enabled(false);
  policy.set_interval_ms(750);
  policy.set_step_bytes(64 * kMiB);  // the idle VM alone can cover the deficit
  policy.set_hold_rounds(2);
  policy.set_balloon_timeout_ms(60000);
  ASSERT_TRUE(set_policy(policy).ok());
  auto measured = wait_policy(
      [](const v1::GetHostPolicyResponse& r) {
        const v1::VmPolicyStatus* idle = vm_status(r, "idle");
        const v1::VmPolicyStatus* busy = vm_status(r, "busy");
        return r.state() == v1::POLICY_STATE_OFF && idle && busy &&
               busy->working_set_bytes() >= kBusyLoop / 2 &&
               idle->idle_bytes() > busy->idle_bytes();
      },
      kConverge);
  ASSERT_TRUE(measured.ok()) << "the working sets never showed: " << measured.error().message;
  EXPECT_TRUE(measured->recent().empty()) << "an off policy decides nothing";
  const v1::VmPolicyStatus busy_before = *vm_status(*measured, "busy");
  EXPECT_EQ(busy_before.spec().floor_bytes(), kFloor);
  EXPECT_TRUE(busy_before.reclaim_available());
  auto rss_before = sum_rss();
  ASSERT_TRUE(rss_before.ok()) << rss_before.error().message;
  const uint64_t policy_rss_before = measured->sample().vm_rss_bytes();
  ASSERT_GT(policy_rss_before, 64 * kMiB) << "the policy's sum counts both VM processes";

  // Watch from here: the API stream and `hvmm policy watch --json` as a process.
  StreamReader<v1::PolicyDecisionEvent> watch([this](grpc::ClientContext* context) {
    v1::WatchPolicyDecisionsRequest request;
    request.set_history(true);
    return api().policy->WatchDecisions(context, request);
  });
  const std::string cli_watch_file = daemon().directory() + "/policy-watch.out";
  auto cli_watch = Subprocess::spawn(
      {binaries().hvmm, "policy", "watch", "--history", "--socket", daemon().socket(), "--json"},
      cli_watch_file);
  ASSERT_TRUE(cli_watch.ok()) << cli_watch.error().message;

  // Take: the VM processes' RSS must drop 48 MiB below what they hold now.
  const uint64_t target = policy_rss_before - 48 * kMiB;
  policy.set_enabled(true);
  policy.set_max_vm_rss_bytes(target);
  auto in_force = set_policy(policy);
  ASSERT_TRUE(in_force.ok()) << in_force.error().message;
  EXPECT_EQ(in_force->max_vm_rss_bytes(), target);
  auto met = wait_policy(
      [target](const v1::GetHostPolicyResponse& r) {
        return r.sample().vm_rss_bytes() <= target && !r.recent().empty();
      },
      kConverge);
  ASSERT_TRUE(met.ok()) << "the target was not met: " << met.error().message << "\n"
                        << decisions_text(by_sequence(watch.messages()));
  auto rss_taken = sum_rss();
  ASSERT_TRUE(rss_taken.ok()) << rss_taken.error().message;
  EXPECT_LE(*rss_taken + 32 * kMiB, *rss_before)
      << "RSS " << *rss_before << " before, " << *rss_taken << " after taking";

  auto taken = by_sequence(watch.messages());
  auto first_take = std::find_if(taken.begin(), taken.end(),
                                 [](const auto& entry) { return takes(entry.second.action()); });
  ASSERT_NE(first_take, taken.end()) << "no INFLATE or RECLAIM decision:\n"
                                     << decisions_text(taken);
  EXPECT_EQ(first_take->second.vm(), "idle") << "the idle VM gives first:\n"
                                             << decisions_text(taken);
  // The busy VM gives only once the idle one is at its floor or no longer the idler of the two.
  const v1::PolicyDecision* last_idle = nullptr;
  for (const auto& [sequence, d] : taken) {
    if (d.vm() == "idle" && takes(d.action())) {
      last_idle = &d;
    }
    if (d.vm() == "busy" && takes(d.action())) {
      ASSERT_NE(last_idle, nullptr);
      const uint64_t idle_left = last_idle->vm_idle_bytes() - last_idle->bytes();
      EXPECT_TRUE(last_idle->balloon_target_bytes() >= kVmMemory - kFloor ||
                  idle_left <= d.vm_idle_bytes())
          << "#" << sequence << " took from the busy VM while the idle VM had " << idle_left
          << " idle bytes above its floor:\n"
          << decisions_text(taken);
      break;
    }
  }
  // The busy VM keeps its working set: no balloon target of its eats into it or its floor.
  for (const auto& [sequence, d] : taken) {
    if (d.vm() == "busy" && d.action() == v1::POLICY_ACTION_INFLATE) {
      EXPECT_GE(kVmMemory - d.balloon_target_bytes(),
                std::max(kFloor, busy_before.working_set_bytes()))
          << "#" << sequence << " ballooned the busy VM into its working set: " << d.reason();
    }
    EXPECT_TRUE(d.error().empty()) << "#" << sequence << ": " << d.error();
  }
  auto busy_stats = memory_stats(api(), "busy");
  ASSERT_TRUE(busy_stats.ok()) << busy_stats.error().message;
  EXPECT_GE(kVmMemory - busy_stats->balloon().actual_bytes(), kFloor);

  // Relax: no target. The policy gives back what it took (reclaimed pages come back as the
  // guest touches them: STOP_RECLAIM only ends the taking).
  policy.set_max_vm_rss_bytes(0);
  ASSERT_TRUE(set_policy(policy).ok());
  auto returned = wait_policy(
      [](const v1::GetHostPolicyResponse& r) {
        for (const v1::VmPolicyStatus& vm : r.vms()) {
          if (vm.taken_balloon_bytes() != 0) {
            return false;
          }
        }
        return r.vms_size() == 2;
      },
      kConverge);
  ASSERT_TRUE(returned.ok()) << "memory did not return: " << returned.error().message;
  for (const char* vm : {"idle", "busy"}) {
    auto balloon_back = [](const v1::Vm& v) { return v.memory().balloon_actual_bytes() == 0; };
    auto back = wait_for_vm(api(), vm, balloon_back, kConverge);
    EXPECT_TRUE(back.ok()) << vm << "'s balloon is not back at its baseline (0): "
                           << (back.ok() ? "" : back.error().message);
  }
  auto all = watch.wait_for(
      [](const v1::PolicyDecisionEvent& e) { return gives(e.decision().action()); }, seconds(30));
  ASSERT_TRUE(all.has_value()) << "no DEFLATE or STOP_RECLAIM:\n"
                               << decisions_text(by_sequence(watch.messages()));
  auto has = [](const std::map<uint64_t, v1::PolicyDecision>& decisions, v1::PolicyAction action) {
    return std::any_of(decisions.begin(), decisions.end(),
                       [action](const auto& entry) { return entry.second.action() == action; });
  };
  const auto after_relax = by_sequence(watch.messages());
  if (has(taken, v1::POLICY_ACTION_INFLATE)) {
    EXPECT_TRUE(has(after_relax, v1::POLICY_ACTION_DEFLATE)) << "what was inflated is deflated";
  }
  if (has(taken, v1::POLICY_ACTION_RECLAIM)) {
    EXPECT_TRUE(has(after_relax, v1::POLICY_ACTION_STOP_RECLAIM));
  }

  // The busy VM's data survived all of it, and it kept running its loop.
  stop_busy();
  EXPECT_GT(busy_rounds_.load(), 2u);
  EXPECT_EQ(busy_errors_.load(), 0u);
  v1::WorkloadRequest verify;
  verify.set_name("busy");
  verify.set_workload(busy_held->workload());
  auto verified = call(*api().guest, &v1::GuestService::Stub::VerifyWorkload, verify, seconds(200));
  ASSERT_TRUE(verified.ok()) << describe(verified.status);
  EXPECT_EQ(verified.response.mismatched_pages(), 0u);
  EXPECT_EQ(verified.response.pages(), kBusyHeld / kPage);
  verify.set_name("idle");
  verify.set_workload(idle_held->workload());
  auto idle_verified =
      call(*api().guest, &v1::GuestService::Stub::VerifyWorkload, verify, seconds(200));
  ASSERT_TRUE(idle_verified.ok()) << describe(idle_verified.status);
  EXPECT_EQ(idle_verified.response.mismatched_pages(), 0u) << "reclaimed pages refault intact";

  // The same decisions in GetHostPolicy.recent, in the stream and in the daemon's log.
  auto final_status = get_policy();
  ASSERT_TRUE(final_status.ok()) << final_status.error().message;
  const auto streamed = by_sequence(watch.messages());
  for (const v1::PolicyDecision& d : final_status->recent()) {
    auto seen = streamed.find(d.sequence());
    ASSERT_NE(seen, streamed.end()) << "#" << d.sequence() << " not streamed";
    EXPECT_EQ(seen->second.vm(), d.vm());
    EXPECT_EQ(seen->second.action(), d.action());
    EXPECT_EQ(seen->second.bytes(), d.bytes());
  }
  const std::string log = daemon().log();
  for (const auto& [sequence, d] : streamed) {
    EXPECT_NE(log.find(d.reason()), std::string::npos)
        << "#" << sequence << " (" << d.reason() << ") is not in the daemon's log";
  }

  // The CLI shows them: `hvmm policy` (text and JSON) and the watch that ran all along.
  CliOptions text;
  text.json = false;
  auto shown = run_cli(daemon().socket(), {"policy"}, text);
  ASSERT_TRUE(shown.ok()) << shown.error().message;
  EXPECT_EQ(shown->status.code, 0) << shown->output;
  EXPECT_NE(shown->output.find("recent decisions"), std::string::npos) << shown->output;
  EXPECT_NE(shown->output.find(" idle "), std::string::npos) << shown->output;
  auto shown_json = run_cli(daemon().socket(), {"policy"});
  ASSERT_TRUE(shown_json.ok()) << shown_json.error().message;
  auto lines = json_lines(shown_json->output);
  ASSERT_EQ(lines.size(), 1u) << shown_json->output;
  auto parsed = parse_json<v1::GetHostPolicyResponse>(lines[0]);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->recent_size(), final_status->recent_size());
  EXPECT_EQ(parsed->vms_size(), 2);

  // What happened, for the record (the figures are emulated inside the nested-KVM guest).
  std::cout << "[ policy   ] VM RSS " << *rss_before / kMiB << " MiB before, " << *rss_taken / kMiB
            << " MiB after taking (target " << target / kMiB << " MiB); busy VM rounds "
            << busy_rounds_.load() << "\n"
            << decisions_text(streamed);

  ExitStatus watch_end = cli_watch->kill();
  (void)watch_end;
  std::map<uint64_t, std::string> cli_seen;
  for (const std::string& line : json_lines(read_text_file(cli_watch_file))) {
    auto event = parse_json<v1::PolicyDecisionEvent>(line);
    ASSERT_TRUE(event.ok()) << event.error().message;
    cli_seen[event->decision().sequence()] = event->decision().vm();
  }
  for (const auto& [sequence, d] : streamed) {
    auto seen = cli_seen.find(sequence);
    EXPECT_TRUE(seen != cli_seen.end() && seen->second == d.vm())
        << "`hvmm policy watch --history` missed #" << sequence;
  }
}

}  // namespace
}  // namespace hvmm::e2e
