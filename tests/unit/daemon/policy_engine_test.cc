// The host policy's engine (daemon/server/policy/engine.h) against a model of VMs that follow
// what it asks (balloons that cooperate or stick, reclaim that takes only cold pages), over
// random samples and many rounds, and in named cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <tuple>

#include "hvmm/daemon/server/policy/actuator.h"
#include "hvmm/daemon/server/policy/engine.h"
#include "hvmm/daemon/server/policy/settings.h"
#include "hvmm/vmm/reclaim/reclaim_policy.h"

namespace hvmm::daemon::policy {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kPage = 4096;

// One VM of the model: what its guest uses, and what its balloon and reclaim do when asked.
struct ModelVm {
  std::string name;
  uint64_t memory = 256 * kMiB;
  uint64_t floor = 0;  // 0: the default
  int32_t priority = 0;
  bool exempt = false;
  bool balloon = true;
  bool balloon_stuck = false;  // never moves
  bool reclaim = false;
  uint64_t working_set = 64 * kMiB;
  uint64_t user_target = 0;  // the balloon target its user set
  uint64_t target = 0;
  uint64_t actual = 0;
  uint64_t reclaimed = 0;
  std::string own_policy = "period=1s,cold=120";
  std::string policy = own_policy;

  uint64_t floor_bytes() const { return floor != 0 ? floor : memory / 4; }
  uint64_t resident() const { return memory - actual - reclaimed; }

  VmView view() const {
    VmView v;
    v.name = name;
    v.memory_bytes = memory;
    v.floor_bytes = floor_bytes();
    v.priority = priority;
    v.exempt = exempt;
    v.balloon_present = balloon;
    v.balloon_target_bytes = target;
    v.balloon_actual_bytes = actual;
    v.reclaim_available = reclaim;
    v.reclaim_policy = policy;
    v.reclaimed_bytes = reclaimed;
    v.footprint_bytes = resident();
    const uint64_t ws = std::min(working_set, resident());
    v.working_set_bytes = ws;
    if (reclaim) {
      v.idle_source = IdleSource::kWorkingSet;
      v.idle_bytes = resident() - ws;
    } else if (balloon) {
      v.idle_source = IdleSource::kGuestStats;
      v.idle_bytes = resident() - ws;
    }
    return v;
  }

  // Carry out one decision the way the VM process and its guest would.
  void apply(const Decision& decision) {
    switch (decision.action) {
      case hvmm::v1::POLICY_ACTION_INFLATE:
      case hvmm::v1::POLICY_ACTION_DEFLATE:
        target = decision.balloon_target_bytes;
        if (!balloon_stuck) {
          actual = target;
        }
        break;
      case hvmm::v1::POLICY_ACTION_RECLAIM: {
        policy = reclaim_policy_with_target(decision.reclaim_policy, decision.reclaim_target_bytes);
        // Only cold pages go: never the working set.
        const uint64_t cold = resident() - std::min(working_set, resident());
        const uint64_t over = resident() > decision.reclaim_target_bytes
                                  ? resident() - decision.reclaim_target_bytes
                                  : 0;
        reclaimed += std::min(cold, over);
        break;
      }
      case hvmm::v1::POLICY_ACTION_STOP_RECLAIM:
        policy = decision.reclaim_policy;
        break;
      default:
        break;
    }
  }
};

hvmm::v1::HostPolicy make_policy(uint64_t min_available, uint64_t step = 32 * kMiB,
                                 uint32_t hold = 3) {
  hvmm::v1::HostPolicy policy;
  policy.set_enabled(true);
  policy.set_min_available_bytes(min_available);
  policy.set_step_bytes(step);
  policy.set_hold_rounds(hold);
  policy.set_hysteresis(0.1);
  policy.set_balloon_timeout_ms(3000);
  return with_defaults(policy);
}

HostSample available(uint64_t bytes) {
  HostSample sample;
  sample.mem_total_bytes = 16384 * kMiB;
  sample.mem_available_bytes = bytes;
  return sample;
}

struct Model {
  std::vector<ModelVm> vms;
  Engine engine;
  uint64_t now_ms = 0;

  std::vector<VmView> views() const {
    std::vector<VmView> out;
    for (const auto& vm : vms) {
      out.push_back(vm.view());
    }
    return out;
  }
  ModelVm& vm(const std::string& name) {
    for (auto& vm : vms) {
      if (vm.name == name) {
        return vm;
      }
    }
    ADD_FAILURE() << "no VM " << name;
    return vms.front();
  }
  Round round(const hvmm::v1::HostPolicy& policy, const HostSample& sample) {
    now_ms += policy.interval_ms();
    Round round = engine.decide(policy, sample, views(), now_ms);
    if (!policy.dry_run()) {
      for (const auto& decision : round.decisions) {
        if (!decision.vm.empty()) {
          vm(decision.vm).apply(decision);
        }
      }
    }
    return round;
  }
};

// The reference: what a round over target takes when every balloon cooperates (and so has
// nothing in flight): greedily, in giving order, the least of a step, the idle bytes, the
// room above the floor and what is still missing, in whole pages.
std::vector<std::pair<std::string, uint64_t>> reference_takes(std::vector<VmView> vms,
                                                              uint64_t step, uint64_t missing) {
  std::vector<std::pair<std::string, uint64_t>> takes;
  std::erase_if(vms, [](const VmView& v) { return v.exempt; });
  std::sort(vms.begin(), vms.end(), [](const VmView& a, const VmView& b) {
    return std::tuple(a.priority, ~a.idle_bytes, a.name) <
           std::tuple(b.priority, ~b.idle_bytes, b.name);
  });
  for (const VmView& v : vms) {
    const uint64_t ram = v.memory_bytes - std::max(v.balloon_target_bytes, v.balloon_actual_bytes) -
                         v.reclaimed_bytes;
    const uint64_t above = ram > v.floor_bytes ? ram - v.floor_bytes : 0;
    const uint64_t bytes = std::min({step, v.idle_bytes, above, missing}) / kPage * kPage;
    if (bytes != 0 && (v.balloon_present || v.reclaim_available)) {
      takes.emplace_back(v.name, bytes);
      missing -= bytes;
    }
  }
  return takes;
}

// Random VMs, floors, priorities, idle memory and samples over many rounds: every decision
// keeps the invariants (floor, exempt, order, step, only what was taken is given back, no
// change inside the band, everything back when disabled).
TEST(PolicyEngine, RandomRoundsKeepTheInvariants) {
  std::mt19937_64 random(11);
  for (int trial = 0; trial < 200; ++trial) {
    Model model;
    const int count = 1 + static_cast<int>(random() % 6);
    for (int i = 0; i < count; ++i) {
      ModelVm vm;
      vm.name = "vm" + std::to_string(i);
      vm.memory = (64 + random() % 960) * kMiB;
      vm.floor = random() % 3 == 0 ? 0 : (random() % (vm.memory / kMiB)) * kMiB;
      vm.priority = static_cast<int32_t>(random() % 3);
      vm.exempt = random() % 7 == 0;
      vm.balloon = random() % 4 != 0;
      vm.balloon_stuck = vm.balloon && trial % 2 == 0 && random() % 4 == 0;
      vm.reclaim = random() % 2 == 0;
      vm.working_set = (random() % (vm.memory / kMiB)) * kMiB;
      vm.user_target = vm.balloon && random() % 3 == 0 ? (random() % 16) * kMiB : 0;
      vm.target = vm.actual = vm.user_target;
      model.vms.push_back(vm);
    }
    const uint64_t min = 4096 * kMiB;
    hvmm::v1::HostPolicy policy =
        make_policy(min, (1 + random() % 64) * kMiB, static_cast<uint32_t>(1 + random() % 4));
    std::map<std::string, uint64_t> taken_balloon;  // the model's account of the policy's part
    uint64_t last_take_round = 0;
    for (uint64_t r = 1; r <= 120; ++r) {
      // Phases: over the target, inside the band, with room; now and then disabled.
      const int phase = static_cast<int>(random() % 3);
      uint64_t avail = phase == 0   ? min - (1 + random() % 2048) * kMiB
                       : phase == 1 ? min + random() % (min / 10)
                                    : min + min / 10 + (1 + random() % 2048) * kMiB;
      const bool disable = random() % 40 == 0;
      policy.set_enabled(!disable);
      const std::vector<VmView> before = model.views();
      std::map<std::string, VmView> view_of;
      for (const auto& v : before) {
        view_of[v.name] = v;
      }
      const Round round = model.round(policy, available(avail));
      SCOPED_TRACE("trial " + std::to_string(trial) + " round " + std::to_string(r));
      if (disable) {
        EXPECT_EQ(round.state, hvmm::v1::POLICY_STATE_OFF);
        for (const auto& vm : model.vms) {
          EXPECT_EQ(vm.target, vm.user_target) << vm.name << ": not given back";
          EXPECT_EQ(vm.policy, vm.own_policy) << vm.name;
        }
        EXPECT_TRUE(model.engine.holds().empty());
        taken_balloon.clear();
        continue;
      }
      if (phase == 1) {
        EXPECT_TRUE(round.decisions.empty()) << "a decision inside the band";
      }
      // Without stuck balloons the round is the reference's, decision for decision.
      if (phase == 0 && trial % 2 == 1) {
        const uint64_t missing = std::max((min - avail) / kPage * kPage, kPage);
        auto expected = reference_takes(before, policy.step_bytes(), missing);
        std::vector<std::pair<std::string, uint64_t>> actual;
        for (const auto& d : round.decisions) {
          if (d.action != hvmm::v1::POLICY_ACTION_NOTHING_LEFT) {
            actual.emplace_back(d.vm, d.bytes);
          }
        }
        EXPECT_EQ(actual, expected);
        const bool said_nothing_left =
            !round.decisions.empty() &&
            round.decisions.back().action == hvmm::v1::POLICY_ACTION_NOTHING_LEFT;
        if (!expected.empty()) {
          EXPECT_FALSE(said_nothing_left);
        }
      }
      const VmView* previous = nullptr;
      bool any_take = false;
      for (const auto& d : round.decisions) {
        if (d.action == hvmm::v1::POLICY_ACTION_NOTHING_LEFT) {
          continue;
        }
        const VmView& v = view_of.at(d.vm);
        const bool is_take = d.action == hvmm::v1::POLICY_ACTION_INFLATE ||
                             d.action == hvmm::v1::POLICY_ACTION_RECLAIM;
        if (is_take) {
          any_take = true;
          EXPECT_EQ(phase, 0) << "took with the target met";
          EXPECT_FALSE(v.exempt) << d.vm << " is exempt";
          EXPECT_LE(d.bytes, policy.step_bytes());
          EXPECT_LE(d.bytes, v.idle_bytes) << d.vm;
          EXPECT_GE(v.guest_ram_bytes() - d.bytes, v.floor_bytes) << d.vm << " below its floor";
          EXPECT_EQ(d.bytes % kPage, 0u);
          if (previous != nullptr) {
            EXPECT_TRUE(gives_before(*previous, v)) << previous->name << " then " << d.vm;
          }
          previous = &v;
          if (d.action == hvmm::v1::POLICY_ACTION_INFLATE) {
            taken_balloon[d.vm] += d.bytes;
          }
        } else {
          EXPECT_EQ(phase, 2) << "gave back without room";
          EXPECT_GE(r - last_take_round, policy.hold_rounds()) << "gave back during the hold";
          if (d.action == hvmm::v1::POLICY_ACTION_DEFLATE) {
            EXPECT_LE(d.bytes, taken_balloon[d.vm]) << d.vm << ": more than was taken";
            EXPECT_LE(d.bytes, policy.step_bytes());
            taken_balloon[d.vm] -= d.bytes;
            EXPECT_GE(d.balloon_target_bytes, model.vm(d.vm).user_target);
          } else {
            EXPECT_EQ(d.reclaim_policy, model.vm(d.vm).own_policy);
          }
        }
      }
      if (any_take) {
        last_take_round = r;
      }
      // A VM passed over while a later one gave had nothing it could give.
      if (any_take) {
        std::vector<VmView> order;
        for (const auto& v : before) {
          if (!v.exempt) {
            order.push_back(v);
          }
        }
        std::sort(order.begin(), order.end(), gives_before);
        size_t last_taken = 0;
        for (size_t i = 0; i < order.size(); ++i) {
          for (const auto& d : round.decisions) {
            if (d.vm == order[i].name) {
              last_taken = i;
            }
          }
        }
        for (size_t i = 0; i < last_taken; ++i) {
          bool was_taken = false;
          for (const auto& d : round.decisions) {
            was_taken = was_taken || d.vm == order[i].name;
          }
          const VmView& v = order[i];
          const uint64_t above =
              v.guest_ram_bytes() > v.floor_bytes ? v.guest_ram_bytes() - v.floor_bytes : 0;
          // Reclaim-only VMs always have a way to give (a balloon may have stopped cooperating).
          if (!was_taken && v.reclaim_available && !v.balloon_present && v.idle_bytes >= kPage &&
              above >= kPage) {
            ADD_FAILURE() << v.name << " was passed over with " << v.idle_bytes << " idle";
          }
        }
      }
      for (const auto& vm : model.vms) {
        EXPECT_GE(vm.target, vm.user_target) << vm.name << ": below the user's target";
        EXPECT_GE(vm.memory - std::max(vm.target, vm.actual) - vm.reclaimed,
                  std::min(vm.floor_bytes(), vm.memory - vm.user_target))
            << vm.name << " below its floor";
        if (vm.exempt) {
          EXPECT_EQ(vm.target, vm.user_target);
          EXPECT_EQ(vm.reclaimed, 0u);
        }
      }
    }
  }
}

// A constant sample inside the band, after memory was taken: nothing changes, round after
// round (no oscillation).
TEST(PolicyEngine, InsideTheBandNothingChanges) {
  Model model;
  model.vms.push_back({.name = "a", .working_set = 32 * kMiB});
  const auto policy = make_policy(1024 * kMiB);
  model.round(policy, available(900 * kMiB));
  ASSERT_EQ(model.vm("a").target, 32 * kMiB);
  for (int i = 0; i < 50; ++i) {
    const Round round = model.round(policy, available(1100 * kMiB));  // < 1024 * 1.1
    EXPECT_TRUE(round.decisions.empty());
    EXPECT_EQ(round.state, hvmm::v1::POLICY_STATE_HOLDING);
  }
  EXPECT_EQ(model.vm("a").target, 32 * kMiB);
}

// The idle VM gives first; the busy one keeps its working set.
TEST(PolicyEngine, TheIdlestGivesFirstAndTheWorkingSetStays) {
  Model model;
  model.vms.push_back({.name = "busy", .working_set = 200 * kMiB});
  model.vms.push_back({.name = "idle", .working_set = 16 * kMiB});
  const auto policy = make_policy(1024 * kMiB, 32 * kMiB);
  Round round = model.round(policy, available(1000 * kMiB));
  ASSERT_EQ(round.decisions.size(), 1u);
  EXPECT_EQ(round.decisions[0].vm, "idle");
  EXPECT_EQ(round.decisions[0].action, hvmm::v1::POLICY_ACTION_INFLATE);
  // A big deficit: both give, the idle one first; the busy one never below its working set.
  for (int i = 0; i < 40; ++i) {
    model.round(policy, available(100 * kMiB));
  }
  EXPECT_GE(model.vm("busy").resident(), 200 * kMiB);
  EXPECT_EQ(model.vm("idle").resident(), 64 * kMiB);  // its floor (a quarter of 256 MiB)
}

// Priorities come before idleness; an exempt VM is never touched.
TEST(PolicyEngine, PriorityFirstExemptNever) {
  Model model;
  model.vms.push_back({.name = "important", .priority = 5, .working_set = 0});
  model.vms.push_back({.name = "cheap", .priority = 0, .working_set = 100 * kMiB});
  model.vms.push_back({.name = "left-alone", .exempt = true, .working_set = 0});
  const auto policy = make_policy(1024 * kMiB, 16 * kMiB);
  Round round = model.round(policy, available(1020 * kMiB));
  ASSERT_EQ(round.decisions.size(), 1u);
  EXPECT_EQ(round.decisions[0].vm, "cheap");
  for (int i = 0; i < 40; ++i) {
    model.round(policy, available(10 * kMiB));
  }
  EXPECT_EQ(model.vm("left-alone").target, 0u);
  EXPECT_GT(model.vm("important").target, 0u);
}

// Nothing left: one NOTHING_LEFT, not one per round; again after the state changed.
TEST(PolicyEngine, NothingLeftOnce) {
  Model model;
  model.vms.push_back({.name = "full", .working_set = 256 * kMiB});
  const auto policy = make_policy(1024 * kMiB);
  int said = 0;
  for (int i = 0; i < 10; ++i) {
    for (const auto& d : model.round(policy, available(10 * kMiB)).decisions) {
      said += d.action == hvmm::v1::POLICY_ACTION_NOTHING_LEFT;
    }
  }
  EXPECT_EQ(said, 1);
  model.round(policy, available(1100 * kMiB));
  const auto again = model.round(policy, available(10 * kMiB));
  ASSERT_EQ(again.decisions.size(), 1u);
  EXPECT_EQ(again.decisions[0].action, hvmm::v1::POLICY_ACTION_NOTHING_LEFT);
}

// A balloon that does not move within the timeout: the VM is reclaimed from instead, and
// STOP_RECLAIM gives its own policy back once there is room.
TEST(PolicyEngine, StuckBalloonLeadsToReclaim) {
  Model model;
  model.vms.push_back(
      {.name = "stuck", .balloon_stuck = true, .reclaim = true, .working_set = 32 * kMiB});
  auto policy = make_policy(1024 * kMiB, 32 * kMiB, 2);
  policy.set_interval_ms(1000);
  Round first = model.round(policy, available(1000 * kMiB));
  ASSERT_EQ(first.decisions.size(), 1u);
  EXPECT_EQ(first.decisions[0].action, hvmm::v1::POLICY_ACTION_INFLATE);
  // Within the timeout: nothing more is asked of it (its pending inflation counts).
  bool reclaimed = false;
  for (int i = 0; i < 6 && !reclaimed; ++i) {
    for (const auto& d : model.round(policy, available(1000 * kMiB)).decisions) {
      if (d.action == hvmm::v1::POLICY_ACTION_RECLAIM) {
        reclaimed = true;
        EXPECT_EQ(d.vm, "stuck");
        EXPECT_NE(d.reason.find("balloon"), std::string::npos) << d.reason;
      } else {
        EXPECT_NE(d.action, hvmm::v1::POLICY_ACTION_INFLATE) << "inflated a stuck balloon again";
      }
    }
  }
  ASSERT_TRUE(reclaimed);
  EXPECT_GT(model.vm("stuck").reclaimed, 0u);
  EXPECT_NE(model.vm("stuck").policy.find("target="), std::string::npos);
  // Room: after the hold, the balloon's part is deflated, then reclaim stops.
  std::vector<hvmm::v1::PolicyAction> given;
  for (int i = 0; i < 10; ++i) {
    for (const auto& d : model.round(policy, available(4096 * kMiB)).decisions) {
      given.push_back(d.action);
    }
  }
  ASSERT_EQ(given.size(), 2u);
  EXPECT_EQ(given[0], hvmm::v1::POLICY_ACTION_DEFLATE);
  EXPECT_EQ(given[1], hvmm::v1::POLICY_ACTION_STOP_RECLAIM);
  EXPECT_EQ(model.vm("stuck").policy, model.vm("stuck").own_policy);
  EXPECT_EQ(model.vm("stuck").target, 0u);
}

// Give back: highest priority first, by at most a step, towards the user's own target.
TEST(PolicyEngine, GivesBackInReverseOrderToTheUsersTarget) {
  Model model;
  model.vms.push_back({.name = "low",
                       .priority = 0,
                       .working_set = 0,
                       .user_target = 8 * kMiB,
                       .target = 8 * kMiB,
                       .actual = 8 * kMiB});
  model.vms.push_back({.name = "high", .priority = 1, .working_set = 0});
  const auto policy = make_policy(1024 * kMiB, 16 * kMiB, 1);
  for (int i = 0; i < 12; ++i) {
    model.round(policy, available(10 * kMiB));
  }
  ASSERT_GT(model.vm("high").target, 0u);
  const Round back = model.round(policy, available(1024 * kMiB + 1024 * kMiB / 10 + 20 * kMiB));
  ASSERT_FALSE(back.decisions.empty());
  EXPECT_EQ(back.decisions[0].vm, "high");
  EXPECT_EQ(back.decisions[0].action, hvmm::v1::POLICY_ACTION_DEFLATE);
  EXPECT_LE(back.decisions[0].bytes, 16 * kMiB);
  for (int i = 0; i < 100; ++i) {
    model.round(policy, available(8192 * kMiB));
  }
  EXPECT_EQ(model.vm("low").target, 8 * kMiB);  // the user's target stays
  EXPECT_EQ(model.vm("high").target, 0u);
  EXPECT_TRUE(model.engine.holds().empty());
}

// A target the user sets while the policy holds memory is the user's: never undone.
TEST(PolicyEngine, AUserTargetIsNotUndone) {
  Model model;
  model.vms.push_back({.name = "a", .working_set = 0});
  const auto policy = make_policy(1024 * kMiB, 16 * kMiB, 1);
  model.round(policy, available(1000 * kMiB));
  ASSERT_EQ(model.vm("a").target, 16 * kMiB);
  model.vm("a").target = model.vm("a").actual = 100 * kMiB;  // the user's SetBalloonTarget
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(model.round(policy, available(8192 * kMiB)).decisions.empty());
  }
  EXPECT_EQ(model.vm("a").target, 100 * kMiB);
}

// Dry run: the decisions are made, nothing is held.
TEST(PolicyEngine, DryRunHoldsNothing) {
  Model model;
  model.vms.push_back({.name = "a", .working_set = 0});
  auto policy = make_policy(1024 * kMiB);
  policy.set_dry_run(true);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(model.round(policy, available(1000 * kMiB)).decisions.size(), 1u);
  }
  EXPECT_TRUE(model.engine.holds().empty());
  EXPECT_EQ(model.vm("a").target, 0u);
}

// The VM RSS and pressure targets: a deficit of the RSS excess, one step for pressure, and
// room only beyond the margins.
TEST(PolicyEngine, RssAndPressureTargets) {
  hvmm::v1::HostPolicy policy = make_policy(0, 8 * kMiB);
  policy.set_max_vm_rss_bytes(1000 * kMiB);
  policy.set_max_pressure_some_avg10(10);
  HostSample sample = available(0);
  sample.vm_rss_bytes = 1100 * kMiB;
  EXPECT_EQ(deficit_bytes(policy, sample, nullptr), 100 * kMiB);
  sample.vm_rss_bytes = 950 * kMiB;
  sample.pressure_available = true;
  sample.pressure_some_avg10 = 12;
  EXPECT_EQ(deficit_bytes(policy, sample, nullptr), 8 * kMiB);
  sample.pressure_some_avg10 = 9.5;
  bool room = true;
  EXPECT_EQ(deficit_bytes(policy, sample, nullptr), 0u);
  room_bytes(policy, sample, &room, nullptr);
  EXPECT_FALSE(room);  // 950 MiB is inside the 10% margin below 1000 MiB
  sample.vm_rss_bytes = 800 * kMiB;
  sample.pressure_some_avg10 = 1;
  EXPECT_EQ(room_bytes(policy, sample, &room, nullptr), 8 * kMiB);
  EXPECT_TRUE(room);
}

// The reclaim policy keeps the VM's own keys and gets the policy's target.
TEST(PolicyActuator, ReclaimPolicyWithTarget) {
  EXPECT_EQ(reclaim_policy_with_target("target=64M,period=1s,cold=120", 1048576),
            "period=1s,cold=120,target=1048576");
  EXPECT_EQ(reclaim_policy_with_target("", 0), "target=4096");
  Decision reclaim;
  reclaim.action = hvmm::v1::POLICY_ACTION_RECLAIM;
  reclaim.vm = "a";
  reclaim.reclaim_policy = "cold=5";
  reclaim.reclaim_target_bytes = 8192;
  auto requests = requests_for(reclaim);
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].reclaim().set_policy(), "cold=5,target=8192");
  EXPECT_EQ(requests[1].reclaim().epochs(), 1u);
}

// What RECLAIM and STOP_RECLAIM send parses as reclaim's own syntax, and may replace the
// policy in force (nothing fixed at build time changes), for any policy the VM reports.
TEST(PolicyActuator, ReclaimPoliciesRoundTrip) {
  for (const char* text : {"", "cold=5,period=200ms", "target=25%,codec=zstd,pool=8M",
                           "target=64M,budget=off,dirty=ring,keep=50%"}) {
    auto own = vmm::parse_reclaim_policy(text);
    ASSERT_TRUE(own.ok()) << text << ": " << own.error().message;
    const std::string reported = vmm::format_reclaim_policy(*own);
    auto tightened = vmm::parse_reclaim_policy(reclaim_policy_with_target(reported, 12345 * kPage));
    ASSERT_TRUE(tightened.ok()) << reported << ": " << tightened.error().message;
    EXPECT_EQ(tightened->target_bytes, 12345 * kPage);
    EXPECT_TRUE(vmm::check_policy_change(*own, *tightened).ok()) << reported;
    auto restored = vmm::parse_reclaim_policy(reported);
    ASSERT_TRUE(restored.ok()) << reported;
    EXPECT_EQ(vmm::format_reclaim_policy(*restored), reported);
  }
}

// HostPolicy's checks name the field; defaults fill the zeros.
TEST(PolicySettings, ChecksNameTheField) {
  hvmm::v1::HostPolicy policy;
  EXPECT_TRUE(check_host_policy(policy).ok());
  auto expect_bad = [](const hvmm::v1::HostPolicy& p, const std::string& field) {
    auto checked = check_host_policy(p);
    ASSERT_FALSE(checked.ok()) << field;
    EXPECT_EQ(checked.error().message.rfind("policy." + field + ":", 0), 0u)
        << checked.error().message;
  };
  auto p = policy;
  p.set_max_pressure_some_avg10(-1);
  expect_bad(p, "max_pressure_some_avg10");
  p.set_max_pressure_some_avg10(std::nan(""));
  expect_bad(p, "max_pressure_some_avg10");
  p.set_max_pressure_some_avg10(101);
  expect_bad(p, "max_pressure_some_avg10");
  p = policy;
  p.set_hysteresis(1.5);
  expect_bad(p, "hysteresis");
  p.set_hysteresis(-0.1);
  expect_bad(p, "hysteresis");
  p = policy;
  p.set_interval_ms(99);
  expect_bad(p, "interval_ms");
  p.set_interval_ms(3600001);
  expect_bad(p, "interval_ms");
  p = policy;
  p.set_step_bytes(100);
  expect_bad(p, "step_bytes");
  p = policy;
  p.set_balloon_timeout_ms(10);
  expect_bad(p, "balloon_timeout_ms");
  const auto filled = with_defaults(policy);
  EXPECT_EQ(filled.hysteresis(), kDefaultHysteresis);
  EXPECT_EQ(filled.interval_ms(), kDefaultIntervalMs);
  EXPECT_EQ(filled.step_bytes(), kDefaultStepBytes);
  EXPECT_EQ(filled.hold_rounds(), kDefaultHoldRounds);
  EXPECT_EQ(filled.balloon_timeout_ms(), kDefaultBalloonTimeoutMs);
}

}  // namespace
}  // namespace hvmm::daemon::policy
