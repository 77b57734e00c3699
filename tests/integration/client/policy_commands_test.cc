// The host memory policy commands against a recording fake daemon: `policy` (the settings,
// the host sample, the per-VM table, the recent decisions), `policy set` (Get, only the given
// settings changed, Set; bad values refused before anything is sent) and `policy watch`.
#include <gtest/gtest.h>

#include <tuple>

#include "client_run.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client::testing {
namespace {

namespace v1 = hvmm::v1;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kTime = 1718107200'000000000;  // 2024-06-11T12:00:00Z

// A policy in force, defaults filled in as the daemon reports them.
v1::HostPolicy policy_in_force() {
  v1::HostPolicy policy;
  policy.set_enabled(true);
  policy.set_max_vm_rss_bytes(1024 * kMiB);
  policy.set_hysteresis(0.1);
  policy.set_interval_ms(1000);
  policy.set_step_bytes(64 * kMiB);
  policy.set_hold_rounds(5);
  policy.set_balloon_timeout_ms(5000);
  return policy;
}

v1::PolicyDecision decision(uint64_t sequence, const std::string& vm, v1::PolicyAction action,
                            uint64_t bytes) {
  v1::PolicyDecision d;
  d.set_sequence(sequence);
  d.set_time_unix_ns(kTime + sequence * 1'000'000);
  d.set_vm(vm);
  d.set_action(action);
  d.set_bytes(bytes);
  d.set_reason("VM RSS 1.10 GiB > 1.00 GiB; " + vm + " is the idlest");
  d.set_balloon_target_bytes(action == v1::POLICY_ACTION_INFLATE ? bytes : 0);
  return d;
}

v1::GetHostPolicyResponse status_response() {
  v1::GetHostPolicyResponse response;
  *response.mutable_policy() = policy_in_force();
  response.set_state(v1::POLICY_STATE_TAKING);
  response.set_rounds(12);
  v1::HostSample& sample = *response.mutable_sample();
  sample.set_time_unix_ns(kTime);
  sample.set_mem_total_bytes(4096 * kMiB);
  sample.set_mem_available_bytes(2048 * kMiB);
  sample.set_vm_rss_bytes(1100 * kMiB);
  sample.set_pressure_available(true);
  sample.set_pressure_some_avg10(1.25);
  v1::VmPolicyStatus& idle = *response.add_vms();
  idle.set_name("idle");
  idle.mutable_spec()->set_floor_bytes(32 * kMiB);
  idle.set_idle_bytes(100 * kMiB);
  idle.set_working_set_bytes(8 * kMiB);
  idle.set_idle_source("working-set");
  idle.set_rss_bytes(120 * kMiB);
  idle.set_taken_balloon_bytes(64 * kMiB);
  idle.set_balloon_cooperates(true);
  idle.set_reclaim_available(true);
  v1::VmPolicyStatus& db = *response.add_vms();
  db.set_name("db");
  db.mutable_spec()->set_exempt(true);
  db.mutable_spec()->set_floor_bytes(64 * kMiB);
  db.set_idle_source("none");
  *response.add_recent() = decision(1, "idle", v1::POLICY_ACTION_INFLATE, 64 * kMiB);
  return response;
}

// `policy` prints the settings, the state, the sample, one row per VM and the decisions.
TEST(ClientPolicy, ShowPrintsThePolicyTheVmsAndTheDecisions) {
  FakeDaemon daemon;
  daemon.respond("Policy.GetHostPolicy", status_response());
  ClientRun r = run(daemon, {"policy"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(daemon.requests<v1::GetHostPolicyRequest>("Policy.GetHostPolicy").size(), 1u);
  auto out = lines(r.out);
  ASSERT_EQ(out.size(), 12u) << r.out;
  EXPECT_EQ(out[0], "policy: enabled");
  EXPECT_EQ(out[1], "targets: available >= -, VM RSS <= 1.00 GiB, pressure (some avg10) <= -");
  EXPECT_EQ(out[2],
            "interval 1000 ms, step 64.0 MiB, hysteresis 0.1, hold 5 rounds, balloon timeout "
            "5000 ms");
  EXPECT_EQ(out[3], "state: taking after 12 rounds");
  EXPECT_EQ(out[4],
            "host at 2024-06-11T12:00:00.000000Z: total 4.00 GiB, available 2.00 GiB, VM RSS "
            "1.07 GiB (warm pool 0 B), pressure some 1.2% full 0.0%");
  EXPECT_EQ(out[5], "");
  EXPECT_EQ(out[6].rfind("VM    PRIORITY  FLOOR     IDLE     WORKING-SET  SOURCE", 0), 0u)
      << out[6];
  EXPECT_EQ(out[7],
            "idle  0         32.0 MiB  100 MiB  8.00 MiB     working-set  120 MiB  64.0 MiB  "
            "0 B      yes");
  EXPECT_EQ(out[8],
            "db    exempt    64.0 MiB  0 B      0 B          none         0 B      0 B       "
            "-        no");
  EXPECT_EQ(out[10], "recent decisions (oldest first):");
  EXPECT_EQ(out[11],
            "2024-06-11T12:00:00.001000Z #1 idle inflate 64.0 MiB: VM RSS 1.10 GiB > 1.00 GiB; "
            "idle is the idlest (balloon target 64.0 MiB)");

  ClientRun json = run(daemon, {"policy", "--json"});
  ASSERT_EQ(json.status, 0) << json.err;
  ASSERT_EQ(lines(json.out).size(), 1u);
  EXPECT_TRUE(same(from_json<v1::GetHostPolicyResponse>(json.out), status_response()));
}

// A daemon without the policy has nothing to show: no sample, no VMs, no decisions.
TEST(ClientPolicy, ShowOfAnIdleDaemon) {
  FakeDaemon daemon;
  ClientRun r = run(daemon, {"policy"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("policy: disabled\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("state: unspecified after 0 rounds\nhost: not sampled yet\nno VMs\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("no decisions yet\n"), std::string::npos) << r.out;
  daemon.fail("Policy.GetHostPolicy", grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no policy"));
  ClientRun failed = run(daemon, {"policy"});
  EXPECT_EQ(failed.status, 1);
  EXPECT_EQ(failed.err, "hvmm: no policy\n");
}

// `policy set` reads the policy in force and sends it back with only the given flags changed.
TEST(ClientPolicy, SetChangesOnlyTheGivenSettings) {
  FakeDaemon daemon;
  v1::GetHostPolicyResponse current;
  *current.mutable_policy() = policy_in_force();
  daemon.respond("Policy.GetHostPolicy", current);
  v1::SetHostPolicyResponse answer;
  *answer.mutable_policy() = policy_in_force();
  answer.mutable_policy()->set_min_available_bytes(512 * kMiB);
  daemon.respond("Policy.SetHostPolicy", answer);

  ClientRun r = run(daemon, {"policy", "set", "--min-available", "512M", "--interval", "500"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto sets = daemon.requests<v1::SetHostPolicyRequest>("Policy.SetHostPolicy");
  ASSERT_EQ(sets.size(), 1u);
  v1::HostPolicy expected = policy_in_force();
  expected.set_min_available_bytes(512 * kMiB);
  expected.set_interval_ms(500);
  EXPECT_TRUE(same(sets[0].policy(), expected)) << sets[0].DebugString();
  EXPECT_EQ(lines(r.out).at(0), "policy: enabled");
  EXPECT_EQ(lines(r.out).at(1),
            "targets: available >= 512 MiB, VM RSS <= 1.00 GiB, pressure (some avg10) <= -");

  ASSERT_EQ(run(daemon, {"policy", "set", "--disable", "--dry-run", "--max-vm-rss", "0",
                         "--max-pressure", "12.5", "--step", "16M", "--hysteresis", "0.25",
                         "--hold-rounds", "3", "--balloon-timeout", "2s"})
                .status,
            0);
  sets = daemon.requests<v1::SetHostPolicyRequest>("Policy.SetHostPolicy");
  ASSERT_EQ(sets.size(), 2u);
  const v1::HostPolicy& all = sets[1].policy();
  EXPECT_FALSE(all.enabled());
  EXPECT_TRUE(all.dry_run());
  EXPECT_EQ(all.max_vm_rss_bytes(), 0u);
  EXPECT_EQ(all.min_available_bytes(), 0u) << "from the policy in force, not the first set";
  EXPECT_DOUBLE_EQ(all.max_pressure_some_avg10(), 12.5);
  EXPECT_EQ(all.step_bytes(), 16 * kMiB);
  EXPECT_DOUBLE_EQ(all.hysteresis(), 0.25);
  EXPECT_EQ(all.hold_rounds(), 3u);
  EXPECT_EQ(all.balloon_timeout_ms(), 2000u);
  EXPECT_EQ(all.interval_ms(), 1000u);

  ASSERT_EQ(run(daemon, {"policy", "set", "--enable", "--no-dry-run", "--json"}).status, 0);
  sets = daemon.requests<v1::SetHostPolicyRequest>("Policy.SetHostPolicy");
  ASSERT_EQ(sets.size(), 3u);
  EXPECT_TRUE(sets[2].policy().enabled());
  EXPECT_FALSE(sets[2].policy().dry_run());
  EXPECT_EQ(daemon.requests<v1::GetHostPolicyRequest>("Policy.GetHostPolicy").size(), 3u);
}

// A value the client cannot read is exit 120 naming the flag, and nothing is sent.
TEST(ClientPolicy, SetRefusesBadValuesWithoutSending) {
  FakeDaemon daemon;
  for (const auto& [flag, value, message] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"--min-available", "lots", "hvmm: --min-available: 'lots' is not a size"},
           {"--max-vm-rss", "1Q", "hvmm: --max-vm-rss: '1Q' has an unknown size suffix"},
           {"--step", "-4M", "hvmm: --step: '-4M' is not a size"},
           {"--max-pressure", "high", "hvmm: --max-pressure: 'high' is not a number"},
           {"--max-pressure", "101", "hvmm: --max-pressure: 101 is outside 0..100"},
           {"--hysteresis", "1.5", "hvmm: --hysteresis: 1.5 is outside 0..1"},
           {"--hysteresis", "0.1x", "hvmm: --hysteresis: '0.1x' is not a number"},
           {"--hold-rounds", "-1", "hvmm: --hold-rounds: '-1' is not a whole number"},
           {"--hold-rounds", "99999999999", "hvmm: --hold-rounds: '99999999999' is above"},
           {"--interval", "soon", "hvmm: --interval: 'soon'"},
           {"--balloon-timeout", "5d", "hvmm: --balloon-timeout: '5d'"}}) {
    ClientRun r = run(daemon, {"policy", "set", flag, value});
    EXPECT_EQ(r.status, 120) << flag << " " << value;
    EXPECT_EQ(r.err.rfind(message, 0), 0u) << r.err;
    EXPECT_EQ(r.out, "");
  }
  ClientRun both = run(daemon, {"policy", "set", "--enable", "--disable"});
  EXPECT_EQ(both.status, 120);
  EXPECT_EQ(both.err, "hvmm: --enable and --disable: give one of them\n");
  EXPECT_EQ(daemon.request_count(), 0u);

  // What the daemon refuses (INVALID_ARGUMENT naming the field) is 120 too.
  daemon.fail("Policy.SetHostPolicy",
              grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "interval_ms: below 100"));
  ClientRun refused = run(daemon, {"policy", "set", "--interval", "1ms"});
  EXPECT_EQ(refused.status, 120);
  EXPECT_EQ(refused.err, "hvmm: interval_ms: below 100\n");
}

// `policy watch` prints one line per decision and asks for the history only with --history.
TEST(ClientPolicy, WatchPrintsOneLinePerDecision) {
  FakeDaemon daemon;
  v1::PolicyDecisionEvent first;
  *first.mutable_decision() = decision(7, "idle", v1::POLICY_ACTION_RECLAIM, 32 * kMiB);
  first.mutable_decision()->set_dry_run(true);
  daemon.stream("Policy.WatchDecisions", first);
  v1::PolicyDecisionEvent second;
  *second.mutable_decision() = decision(9, "", v1::POLICY_ACTION_NOTHING_LEFT, 0);
  second.mutable_decision()->set_error("every VM is at its floor");
  second.set_dropped_before(1);
  daemon.stream("Policy.WatchDecisions", second);

  ClientRun r = run(daemon, {"policy", "watch"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto requests = daemon.requests<v1::WatchPolicyDecisionsRequest>("Policy.WatchDecisions");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_FALSE(requests[0].history());
  auto out = lines(r.out);
  ASSERT_EQ(out.size(), 2u) << r.out;
  EXPECT_EQ(out[0],
            "2024-06-11T12:00:00.007000Z #7 idle reclaim 32.0 MiB: VM RSS 1.10 GiB > 1.00 GiB; "
            "idle is the idlest (dry run)");
  EXPECT_EQ(out[1].rfind("2024-06-11T12:00:00.009000Z #9 - nothing-left 0 B: ", 0), 0u) << out[1];
  EXPECT_NE(out[1].find(" error: every VM is at its floor"), std::string::npos);
  EXPECT_EQ(r.err, "hvmm: 1 decisions dropped (this client read too slowly)\n");

  ClientRun json = run(daemon, {"policy", "watch", "--history", "--json"});
  ASSERT_EQ(json.status, 0) << json.err;
  EXPECT_TRUE(
      daemon.requests<v1::WatchPolicyDecisionsRequest>("Policy.WatchDecisions").at(1).history());
  auto json_lines = lines(json.out);
  ASSERT_EQ(json_lines.size(), 2u);
  EXPECT_TRUE(same(from_json<v1::PolicyDecisionEvent>(json_lines[0]), first));
  EXPECT_TRUE(same(from_json<v1::PolicyDecisionEvent>(json_lines[1]), second));

  daemon.fail("Policy.WatchDecisions",
              grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "too slow"));
  EXPECT_EQ(run(daemon, {"policy", "watch"}).status, 6);
}

}  // namespace
}  // namespace hvmm::client::testing
