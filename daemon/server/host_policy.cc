// The host memory policy on the event loop (host_policy.h).
#include "hvmm/daemon/server/host_policy.h"

#include <algorithm>
#include <set>

#include "hvmm/daemon/server/log.h"
#include "hvmm/daemon/server/policy/actuator.h"
#include "hvmm/daemon/server/policy/host_sample.h"
#include "hvmm/daemon/server/policy/settings.h"
#include "hvmm/daemon/server/policy/vm_view.h"

namespace hvmm::daemon {

namespace {

using Clock = std::chrono::steady_clock;

// How long a round waits for its VMs' figures: half the interval, within [50 ms, 2 s].
std::chrono::milliseconds answer_budget(const hvmm::v1::HostPolicy& policy) {
  return std::clamp(std::chrono::milliseconds(policy.interval_ms() / 2),
                    std::chrono::milliseconds(50), std::chrono::milliseconds(2000));
}

uint64_t now_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
          .count());
}

std::string action_name(hvmm::v1::PolicyAction action) {
  std::string name = hvmm::v1::PolicyAction_Name(action);
  const std::string prefix = "POLICY_ACTION_";
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

std::string state_word(hvmm::v1::PolicyState state) {
  std::string name = hvmm::v1::PolicyState_Name(state);
  const std::string prefix = "POLICY_STATE_";
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

hvmm::v1::VmPolicyStatus vm_status(const policy::VmView& view, const hvmm::v1::VmSpec& spec) {
  hvmm::v1::VmPolicyStatus status;
  status.set_name(view.name);
  *status.mutable_spec() = spec.policy();
  status.mutable_spec()->set_floor_bytes(view.floor_bytes);
  status.set_idle_bytes(view.idle_bytes);
  status.set_working_set_bytes(view.working_set_bytes);
  status.set_idle_source(policy::idle_source_name(view.idle_source));
  status.set_rss_bytes(view.rss_bytes);
  status.set_balloon_cooperates(view.balloon_present);
  status.set_reclaim_available(view.reclaim_available);
  return status;
}

}  // namespace

hvmm::v1::HostSample sample_to_proto(const policy::HostSample& sample) {
  hvmm::v1::HostSample out;
  out.set_time_unix_ns(sample.time_unix_ns);
  out.set_mem_total_bytes(sample.mem_total_bytes);
  out.set_mem_available_bytes(sample.mem_available_bytes);
  out.set_vm_rss_bytes(sample.vm_rss_bytes);
  out.set_warm_pool_rss_bytes(sample.warm_pool_rss_bytes);
  out.set_pressure_some_avg10(sample.pressure_some_avg10);
  out.set_pressure_full_avg10(sample.pressure_full_avg10);
  out.set_pressure_available(sample.pressure_available);
  return out;
}

// One round's figures, filled as the VMs answer.
struct HostPolicy::Gather {
  uint64_t round_id = 0;
  policy::HostSample sample;
  std::vector<policy::VmView> views;
  std::vector<hvmm::v1::VmPolicyStatus> statuses;
  std::set<std::string> running;
  size_t outstanding = 1;  // the round's own share, released once every request is sent
};

HostPolicy::HostPolicy(boost::asio::io_context& io, VmManager& vms, Options options)
    : io_(io),
      vms_(vms),
      options_(std::move(options)),
      policy_(policy::with_defaults(options_.initial)),
      timer_(io),
      warm_pool_rss_([] { return uint64_t{0}; }) {}

void HostPolicy::start() {
  log::info("host policy", {{"enabled", policy_.enabled() ? "true" : "false"},
                            {"dry_run", policy_.dry_run() ? "true" : "false"},
                            {"min_available_bytes", policy_.min_available_bytes()},
                            {"max_vm_rss_bytes", policy_.max_vm_rss_bytes()},
                            {"max_pressure", fmt::format("{}", policy_.max_pressure_some_avg10())},
                            {"interval_ms", policy_.interval_ms()}});
  begin_round();
}

void HostPolicy::stop() {
  stopped_ = true;
  timer_.cancel();
  for (auto& watcher : watchers_) {
    watcher.stream->finish(grpc::Status::OK);
  }
  watchers_.clear();
}

void HostPolicy::set_warm_pool_rss(std::function<uint64_t()> warm_pool_rss) {
  warm_pool_rss_ = std::move(warm_pool_rss);
}

void HostPolicy::schedule() {
  if (stopped_) {
    return;
  }
  timer_.expires_after(std::chrono::milliseconds(policy_.interval_ms()));
  timer_.async_wait([this](const boost::system::error_code& error) {
    if (!error) {
      begin_round();
    }
  });
}

void HostPolicy::begin_round() {
  if (stopped_) {
    return;
  }
  if (round_busy_) {
    rerun_ = true;  // the round in flight is not overlapped
    return;
  }
  schedule();
  auto sample = policy::read_host_sample(options_.meminfo_path, options_.pressure_path);
  if (!sample) {
    if (sample.error().message != last_sample_error_) {
      log::warn("host policy: cannot sample the host", {{"error", sample.error().message}});
      last_sample_error_ = sample.error().message;
    }
    return;
  }
  last_sample_error_.clear();
  round_busy_ = true;
  auto gather = std::make_shared<Gather>();
  gather->round_id = ++round_id_;
  gather->sample = *sample;
  gather->sample.warm_pool_rss_bytes = warm_pool_rss_();
  gather->sample.vm_rss_bytes = gather->sample.warm_pool_rss_bytes;
  const Deadline deadline = Clock::now() + answer_budget(policy_);
  auto finish_one = [this, gather] {
    if (--gather->outstanding == 0) {
      decide(*gather);
    }
  };
  for (auto& running : vms_.running_vms()) {
    gather->running.insert(running.name);
    supervisor::Request request;
    request.mutable_get_memory_stats()->set_name(running.name);
    ++gather->outstanding;
    vms_.forward(running.name, nullptr, std::move(request), deadline,
                 [gather, finish_one, name = running.name, spec = std::move(running.spec)](
                     const grpc::Status& status, supervisor::Response* response) {
                   // A VM that does not answer in time is skipped this round.
                   if (status.ok() && response != nullptr && response->has_get_memory_stats()) {
                     const auto& stats = response->get_memory_stats().stats();
                     gather->views.push_back(policy::make_vm_view(name, spec, stats));
                     gather->statuses.push_back(vm_status(gather->views.back(), spec));
                     gather->sample.vm_rss_bytes += stats.host().rss_bytes();
                   }
                   finish_one();
                 });
  }
  finish_one();
}

void HostPolicy::decide(Gather& gather) {
  if (stopped_) {
    return;
  }
  engine_.retain(gather.running);
  const hvmm::v1::PolicyState before = engine_.state();
  policy::Round round = engine_.decide(policy_, gather.sample, gather.views, now_ms());
  if (round.state != before) {
    log::info("host policy state", {{"state", state_word(round.state)}});
  }
  last_sample_ = sample_to_proto(gather.sample);
  for (auto& status : gather.statuses) {
    auto hold = engine_.holds().find(status.name());
    if (hold != engine_.holds().end()) {
      status.set_taken_balloon_bytes(hold->second.balloon_taken);
      status.set_taken_reclaim_bytes(hold->second.reclaim_taken);
      status.set_balloon_cooperates(status.balloon_cooperates() && hold->second.balloon_cooperates);
    }
  }
  std::sort(gather.statuses.begin(), gather.statuses.end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  last_vms_ = std::move(gather.statuses);
  for (auto& decision : round.decisions) {
    queued_.push_back(std::move(decision));
  }
  carry_out_next();
}

// A round's decisions are carried out one after the other, in the engine's order, so that
// their sequence numbers (given when each is recorded) say the order the engine chose, not
// which VM process happened to answer first.
void HostPolicy::carry_out_next() {
  if (queued_.empty()) {
    actions_done();
    return;
  }
  policy::Decision decision = std::move(queued_.front());
  queued_.pop_front();
  auto requests =
      std::make_shared<std::vector<supervisor::Request>>(policy::requests_for(decision));
  if (policy_.dry_run() || requests->empty()) {
    record(decision, last_sample_, policy_.dry_run(), "");
    carry_out_next();
    return;
  }
  send_next(std::move(requests), 0, std::move(decision), last_sample_);
}

// Send the decision's requests one after the other; the first failure ends it.
void HostPolicy::send_next(std::shared_ptr<std::vector<supervisor::Request>> requests, size_t next,
                           policy::Decision decision, hvmm::v1::HostSample sample) {
  if (next == requests->size()) {
    record(decision, sample, false, "");
    carry_out_next();
    return;
  }
  supervisor::Request request = (*requests)[next];
  const Deadline deadline = Clock::now() + std::chrono::seconds(30);
  std::string vm = decision.vm;
  vms_.forward(vm, nullptr, std::move(request), deadline,
               [this, requests, next, decision = std::move(decision), sample = std::move(sample)](
                   const grpc::Status& status, supervisor::Response*) mutable {
                 if (!status.ok()) {
                   engine_.failed(decision);
                   record(decision, sample, false, status.error_message());
                   carry_out_next();
                   return;
                 }
                 send_next(std::move(requests), next + 1, std::move(decision), std::move(sample));
               });
}

void HostPolicy::actions_done() {
  round_busy_ = false;
  if (rerun_) {
    rerun_ = false;
    timer_.cancel();
    begin_round();
  }
}

void HostPolicy::record(const policy::Decision& decision, const hvmm::v1::HostSample& sample,
                        bool dry_run, const std::string& error) {
  hvmm::v1::PolicyDecision out;
  out.set_sequence(next_sequence_++);
  out.set_time_unix_ns(unix_now_ns());
  out.set_vm(decision.vm);
  out.set_action(decision.action);
  out.set_bytes(decision.bytes);
  out.set_reason(decision.reason);
  *out.mutable_sample() = sample;
  out.set_vm_idle_bytes(decision.vm_idle_bytes);
  out.set_vm_working_set_bytes(decision.vm_working_set_bytes);
  out.set_balloon_target_bytes(decision.balloon_target_bytes);
  out.set_dry_run(dry_run);
  out.set_error(error);
  if (error.empty()) {
    log::info("policy decision", {{"vm", decision.vm},
                                  {"action", action_name(decision.action)},
                                  {"bytes", decision.bytes},
                                  {"reason", decision.reason},
                                  {"dry_run", dry_run ? "true" : "false"}});
  } else {
    log::warn("policy decision failed", {{"vm", decision.vm},
                                         {"action", action_name(decision.action)},
                                         {"bytes", decision.bytes},
                                         {"reason", decision.reason},
                                         {"error", error}});
  }
  recent_.push_back(out);
  if (recent_.size() > kKeptDecisions) {
    recent_.pop_front();
  }
  hvmm::v1::PolicyDecisionEvent event;
  *event.mutable_decision() = std::move(out);
  for (auto& watcher : watchers_) {
    watcher.stream->push(event);
  }
}

hvmm::v1::GetHostPolicyResponse HostPolicy::status() const {
  hvmm::v1::GetHostPolicyResponse response;
  *response.mutable_policy() = policy_;
  response.set_state(engine_.state());
  *response.mutable_sample() = last_sample_;
  for (const auto& vm : last_vms_) {
    *response.add_vms() = vm;
  }
  for (const auto& decision : recent_) {
    *response.add_recent() = decision;
  }
  response.set_rounds(engine_.rounds());
  return response;
}

hvmm::v1::HostPolicy HostPolicy::set(const hvmm::v1::HostPolicy& policy) {
  policy_ = policy::with_defaults(policy);
  log::info("host policy set",
            {{"enabled", policy_.enabled() ? "true" : "false"},
             {"dry_run", policy_.dry_run() ? "true" : "false"},
             {"min_available_bytes", policy_.min_available_bytes()},
             {"max_vm_rss_bytes", policy_.max_vm_rss_bytes()},
             {"max_pressure", fmt::format("{}", policy_.max_pressure_some_avg10())},
             {"interval_ms", policy_.interval_ms()}});
  timer_.cancel();
  begin_round();
  return policy_;
}

void HostPolicy::watch(bool history, const std::shared_ptr<DecisionStream>& stream, uint64_t* id) {
  if (history) {
    for (const auto& decision : recent_) {
      hvmm::v1::PolicyDecisionEvent event;
      *event.mutable_decision() = decision;
      stream->push(std::move(event));
    }
  }
  *id = next_watcher_id_++;
  if (stopped_) {
    stream->finish(grpc::Status::OK);
    return;
  }
  watchers_.push_back({*id, stream});
}

void HostPolicy::unwatch(uint64_t id) {
  std::erase_if(watchers_, [id](const Watcher& watcher) { return watcher.id == id; });
}

}  // namespace hvmm::daemon
