// One round of the host memory policy (engine.h).
#include "hvmm/daemon/server/policy/engine.h"

#include <algorithm>

#include "hvmm/daemon/args/human.h"

namespace hvmm::daemon::policy {
namespace {

using hvmm::args::human_size;
using hvmm::v1::PolicyAction;

constexpr uint64_t kPage = 4096;

uint64_t pages_down(uint64_t bytes) {
  return bytes & ~(kPage - 1);
}

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& part : parts) {
    out += (out.empty() ? "" : ", ") + part;
  }
  return out;
}

std::string percent(double value) {
  return fmt::format("{:.2f}%", value);
}

// What every decision about `vm` carries.
Decision decision_for(PolicyAction action, const VmView& vm, uint64_t bytes, std::string reason) {
  Decision decision;
  decision.action = action;
  decision.vm = vm.name;
  decision.bytes = bytes;
  decision.reason = std::move(reason);
  decision.vm_idle_bytes = vm.idle_bytes;
  decision.vm_working_set_bytes = vm.working_set_bytes;
  return decision;
}

std::string describe_vm(const VmView& vm) {
  return fmt::format("{} gives (priority {}, {} idle by {})", vm.name, vm.priority,
                     human_size(vm.idle_bytes), idle_source_name(vm.idle_source));
}

}  // namespace

struct Engine::Context {
  const hvmm::v1::HostPolicy& policy;
  std::map<std::string, VmHold>& holds;  // the round's copy (dry run: discarded)
  std::vector<const VmView*> order;      // the VMs that may give, in giving order
  const std::vector<VmView>& vms;
  uint64_t now_ms;
  std::string why;  // the host's side of the reason
  Round round;
};

bool gives_before(const VmView& a, const VmView& b) {
  if (a.priority != b.priority) {
    return a.priority < b.priority;
  }
  if (a.idle_bytes != b.idle_bytes) {
    return a.idle_bytes > b.idle_bytes;
  }
  return a.name < b.name;
}

uint64_t deficit_bytes(const hvmm::v1::HostPolicy& policy, const HostSample& sample,
                       std::string* why) {
  uint64_t deficit = 0;
  std::vector<std::string> reasons;
  if (policy.min_available_bytes() != 0 &&
      sample.mem_available_bytes < policy.min_available_bytes()) {
    deficit = std::max(deficit, policy.min_available_bytes() - sample.mem_available_bytes);
    reasons.push_back(fmt::format("available {} < {}", human_size(sample.mem_available_bytes),
                                  human_size(policy.min_available_bytes())));
  }
  if (policy.max_vm_rss_bytes() != 0 && sample.vm_rss_bytes > policy.max_vm_rss_bytes()) {
    deficit = std::max(deficit, sample.vm_rss_bytes - policy.max_vm_rss_bytes());
    reasons.push_back(fmt::format("VM RSS {} > {}", human_size(sample.vm_rss_bytes),
                                  human_size(policy.max_vm_rss_bytes())));
  }
  if (policy.max_pressure_some_avg10() != 0 && sample.pressure_available &&
      sample.pressure_some_avg10 > policy.max_pressure_some_avg10()) {
    deficit = std::max(deficit, policy.step_bytes());
    reasons.push_back(fmt::format("pressure {} > {}", percent(sample.pressure_some_avg10),
                                  percent(policy.max_pressure_some_avg10())));
  }
  if (why != nullptr) {
    *why = joined(reasons);
  }
  return deficit == 0 ? 0 : std::max(pages_down(deficit), kPage);
}

uint64_t room_bytes(const hvmm::v1::HostPolicy& policy, const HostSample& sample, bool* room,
                    std::string* why) {
  const double h = policy.hysteresis();
  uint64_t budget = UINT64_MAX;
  std::vector<std::string> reasons;
  *room = true;
  if (policy.min_available_bytes() != 0) {
    const auto margin =
        static_cast<uint64_t>(static_cast<double>(policy.min_available_bytes()) * (1 + h));
    if (sample.mem_available_bytes <= margin) {
      *room = false;
    } else {
      budget = std::min(budget, sample.mem_available_bytes - margin);
      reasons.push_back(fmt::format("available {} > {}", human_size(sample.mem_available_bytes),
                                    human_size(margin)));
    }
  }
  if (policy.max_vm_rss_bytes() != 0) {
    const auto margin =
        static_cast<uint64_t>(static_cast<double>(policy.max_vm_rss_bytes()) * (1 - h));
    if (sample.vm_rss_bytes >= margin) {
      *room = false;
    } else {
      budget = std::min(budget, margin - sample.vm_rss_bytes);
      reasons.push_back(
          fmt::format("VM RSS {} < {}", human_size(sample.vm_rss_bytes), human_size(margin)));
    }
  }
  if (policy.max_pressure_some_avg10() != 0 && sample.pressure_available) {
    const double margin = policy.max_pressure_some_avg10() * (1 - h);
    if (sample.pressure_some_avg10 >= margin) {
      *room = false;
    } else {
      budget = std::min(budget, policy.step_bytes());
      reasons.push_back(
          fmt::format("pressure {} < {}", percent(sample.pressure_some_avg10), percent(margin)));
    }
  }
  if (why != nullptr) {
    *why = joined(reasons);
  }
  return *room ? budget : 0;
}

// Follow what the VMs did since the last round: a user's new balloon target, an inflation
// that arrived or did not, what reclaim took.
void Engine::observe(Context& context) {
  for (const VmView& vm : context.vms) {
    auto found = context.holds.find(vm.name);
    if (found == context.holds.end()) {
      continue;
    }
    VmHold& hold = found->second;
    if (hold.balloon_taken != 0 && vm.balloon_target_bytes != hold.policy_target) {
      hold.balloon_taken = 0;  // the user set a target: it is theirs now
      hold.inflating = false;
    }
    if (hold.inflating) {
      const uint64_t wanted =
          hold.policy_target > hold.inflate_from ? hold.policy_target - hold.inflate_from : 0;
      const uint64_t moved = vm.balloon_actual_bytes > hold.inflate_from
                                 ? vm.balloon_actual_bytes - hold.inflate_from
                                 : 0;
      if (2 * moved >= wanted) {
        hold.inflating = false;
      } else if (context.now_ms - hold.inflate_at_ms >= context.policy.balloon_timeout_ms()) {
        hold.inflating = false;
        hold.balloon_cooperates = false;
      }
    }
    if (hold.reclaiming) {
      hold.reclaim_taken = vm.reclaimed_bytes > hold.reclaimed_before
                               ? vm.reclaimed_bytes - hold.reclaimed_before
                               : 0;
    }
  }
}

void Engine::take(Context& context, uint64_t deficit) {
  const uint64_t step = context.policy.step_bytes();
  // Memory already on its way (inflations being watched) counts against the deficit.
  uint64_t in_flight = 0;
  for (const VmView* vm : context.order) {
    auto found = context.holds.find(vm->name);
    if (found != context.holds.end() && found->second.inflating &&
        vm->balloon_target_bytes > vm->balloon_actual_bytes) {
      in_flight += vm->balloon_target_bytes - vm->balloon_actual_bytes;
    }
  }
  if (deficit <= in_flight) {
    return;
  }
  deficit -= in_flight;
  uint64_t taken = 0;
  for (const VmView* vm : context.order) {
    if (deficit <= taken) {
      break;
    }
    auto existing = context.holds.find(vm->name);
    const bool cooperates = existing == context.holds.end() || existing->second.balloon_cooperates;
    const bool balloon = vm->balloon_present && cooperates;
    const uint64_t pending = balloon && vm->balloon_target_bytes > vm->balloon_actual_bytes
                                 ? vm->balloon_target_bytes - vm->balloon_actual_bytes
                                 : 0;
    const uint64_t idle = vm->idle_bytes > pending ? vm->idle_bytes - pending : 0;
    const uint64_t in_guest = vm->guest_ram_bytes();
    const uint64_t above_floor = in_guest > vm->floor_bytes ? in_guest - vm->floor_bytes : 0;
    const uint64_t bytes = pages_down(std::min({step, idle, above_floor, deficit - taken}));
    if (bytes == 0 || (!balloon && !vm->reclaim_available)) {
      continue;
    }
    std::string reason = context.why + "; " + describe_vm(*vm);
    VmHold& hold = context.holds[vm->name];
    if (balloon) {
      if (hold.balloon_taken == 0) {
        hold.baseline_target = vm->balloon_target_bytes;
      }
      hold.policy_target = vm->balloon_target_bytes + bytes;
      hold.balloon_taken = hold.policy_target - hold.baseline_target;
      hold.inflating = true;
      hold.inflate_from = vm->balloon_actual_bytes;
      hold.inflate_at_ms = context.now_ms;
      Decision decision = decision_for(hvmm::v1::POLICY_ACTION_INFLATE, *vm, bytes, reason);
      decision.balloon_target_bytes = hold.policy_target;
      context.round.decisions.push_back(std::move(decision));
    } else {
      if (!hold.reclaiming) {
        hold.reclaiming = true;
        hold.own_policy = vm->reclaim_policy;
        hold.reclaimed_before = vm->reclaimed_bytes;
        hold.reclaim_taken = 0;
        hold.reclaim_target = vm->footprint_bytes;
      }
      const uint64_t from = std::min(hold.reclaim_target, vm->footprint_bytes);
      hold.reclaim_target = from > bytes ? from - bytes : 0;
      if (vm->balloon_present) {
        reason += "; its balloon did not follow within " +
                  std::to_string(context.policy.balloon_timeout_ms()) + " ms";
      }
      Decision decision = decision_for(hvmm::v1::POLICY_ACTION_RECLAIM, *vm, bytes, reason);
      decision.reclaim_target_bytes = hold.reclaim_target;
      decision.reclaim_policy = hold.own_policy;
      context.round.decisions.push_back(std::move(decision));
    }
    taken += bytes;
  }
  if (taken != 0) {
    last_take_round_ = rounds_;
    took_ever_ = true;
    nothing_left_ = false;
  } else if (!nothing_left_) {
    nothing_left_ = true;
    Decision decision;
    decision.action = hvmm::v1::POLICY_ACTION_NOTHING_LEFT;
    decision.reason = context.why + "; every VM is at its floor, exempt or without idle memory";
    context.round.decisions.push_back(std::move(decision));
  }
}

void Engine::give_back(Context& context, uint64_t budget) {
  const uint64_t step = context.policy.step_bytes();
  for (auto it = context.order.rbegin(); it != context.order.rend() && budget != 0; ++it) {
    const VmView& vm = **it;
    auto found = context.holds.find(vm.name);
    if (found == context.holds.end() || !found->second.holds_anything()) {
      continue;
    }
    VmHold& hold = found->second;
    const std::string reason = (context.why.empty() ? "" : context.why + "; ") +
                               fmt::format("giving back to {} (priority {})", vm.name, vm.priority);
    if (hold.balloon_taken != 0) {
      const uint64_t bytes = std::min({step, hold.balloon_taken, budget});
      hold.policy_target -= bytes;
      hold.balloon_taken -= bytes;
      hold.inflating = false;
      budget -= bytes;
      Decision decision = decision_for(hvmm::v1::POLICY_ACTION_DEFLATE, vm, bytes, reason);
      decision.balloon_target_bytes = hold.policy_target;
      context.round.decisions.push_back(std::move(decision));
    } else {
      Decision decision =
          decision_for(hvmm::v1::POLICY_ACTION_STOP_RECLAIM, vm, hold.reclaim_taken, reason);
      decision.reclaim_policy = hold.own_policy;
      budget -= std::min(budget, std::max(hold.reclaim_taken, kPage));
      hold.reclaiming = false;
      context.round.decisions.push_back(std::move(decision));
    }
    if (!hold.holds_anything()) {
      context.holds.erase(found);  // a fresh start: its balloon may cooperate again
    }
  }
}

void Engine::give_everything_back(Context& context) {
  for (const VmView& vm : context.vms) {
    auto found = context.holds.find(vm.name);
    if (found == context.holds.end()) {
      continue;
    }
    VmHold& hold = found->second;
    const std::string reason = "the policy is off: giving back everything it took";
    if (hold.balloon_taken != 0) {
      Decision decision =
          decision_for(hvmm::v1::POLICY_ACTION_DEFLATE, vm, hold.balloon_taken, reason);
      decision.balloon_target_bytes = hold.baseline_target;
      context.round.decisions.push_back(std::move(decision));
    }
    if (hold.reclaiming) {
      Decision decision =
          decision_for(hvmm::v1::POLICY_ACTION_STOP_RECLAIM, vm, hold.reclaim_taken, reason);
      decision.reclaim_policy = hold.own_policy;
      context.round.decisions.push_back(std::move(decision));
    }
    context.holds.erase(found);
  }
}

Round Engine::decide(const hvmm::v1::HostPolicy& policy, const HostSample& sample,
                     const std::vector<VmView>& vms, uint64_t now_ms) {
  ++rounds_;
  std::map<std::string, VmHold> holds = holds_;
  Context context{policy, holds, {}, vms, now_ms, {}, {}};
  for (const VmView& vm : vms) {
    if (!vm.exempt || holds.count(vm.name) != 0) {
      context.order.push_back(&vm);
    }
  }
  std::sort(context.order.begin(), context.order.end(),
            [](const VmView* a, const VmView* b) { return gives_before(*a, *b); });
  observe(context);
  bool anything_held = false;
  for (const auto& [name, hold] : holds) {
    anything_held = anything_held || hold.holds_anything();
  }
  if (!policy.enabled()) {
    give_everything_back(context);
    nothing_left_ = false;
    context.round.state = hvmm::v1::POLICY_STATE_OFF;
  } else if (uint64_t deficit = deficit_bytes(policy, sample, &context.why); deficit != 0) {
    // An exempt VM is never taken from (only given back what it held before it was exempt).
    std::erase_if(context.order, [](const VmView* vm) { return vm->exempt; });
    take(context, deficit);
    context.round.state = hvmm::v1::POLICY_STATE_TAKING;
  } else {
    nothing_left_ = false;
    bool room = false;
    const uint64_t budget = room_bytes(policy, sample, &room, &context.why);
    const bool held_long_enough = !took_ever_ || rounds_ - last_take_round_ >= policy.hold_rounds();
    // Inside the margin: HOLDING even with nothing held (policy.proto's states).
    if (!room) {
      context.round.state = hvmm::v1::POLICY_STATE_HOLDING;
    } else if (!anything_held) {
      context.round.state = hvmm::v1::POLICY_STATE_MET;
    } else if (!held_long_enough) {
      context.round.state = hvmm::v1::POLICY_STATE_HOLDING;
    } else {
      give_back(context, budget);
      context.round.state = hvmm::v1::POLICY_STATE_GIVING;
    }
  }
  if (!policy.dry_run()) {
    holds_ = std::move(holds);
  }
  state_ = context.round.state;
  return std::move(context.round);
}

void Engine::failed(const Decision& decision) {
  auto found = holds_.find(decision.vm);
  if (found == holds_.end()) {
    return;
  }
  VmHold& hold = found->second;
  switch (decision.action) {
    case hvmm::v1::POLICY_ACTION_INFLATE:
      hold.policy_target -= std::min(hold.policy_target, decision.bytes);
      hold.balloon_taken -= std::min(hold.balloon_taken, decision.bytes);
      hold.inflating = false;
      break;
    case hvmm::v1::POLICY_ACTION_RECLAIM:
      hold.reclaim_target += decision.bytes;  // the VM's reclaim target was not lowered
      break;
    default:
      break;  // a failed give-back: the VM keeps what it has; nothing more to give
  }
  if (!hold.holds_anything()) {
    holds_.erase(found);
  }
}

void Engine::retain(const std::set<std::string>& running) {
  std::erase_if(holds_, [&running](const auto& entry) { return running.count(entry.first) == 0; });
}

}  // namespace hvmm::daemon::policy
