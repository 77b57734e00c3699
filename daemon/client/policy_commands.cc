// policy (GetHostPolicy shown), policy set (Get, the given settings changed, Set) and policy
// watch [--history] (WatchDecisions, one line per decision): the daemon's host memory policy.
#include <grpcpp/grpcpp.h>

#include <cctype>
#include <memory>
#include <optional>

#include "hvmm/daemon/client/arg_values.h"
#include "hvmm/daemon/client/commands.h"
#include "hvmm/daemon/client/policy_text.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client {
namespace {

namespace v1 = hvmm::v1;

// The flags of `policy set`, as typed; unset: keep what is in force.
struct SetArgs {
  bool enable = false;
  bool disable = false;
  std::optional<bool> dry_run;
  std::optional<std::string> min_available;
  std::optional<std::string> max_vm_rss;
  std::optional<std::string> max_pressure;
  std::optional<std::string> interval;
  std::optional<std::string> step;
  std::optional<std::string> hysteresis;
  std::optional<std::string> hold_rounds;
  std::optional<std::string> balloon_timeout;
};

// A duration in ms for a flag whose unit is the millisecond: "500ms", "2s", or a bare "500".
Result<uint32_t> milliseconds_value(std::string_view name, std::string text) {
  if (!text.empty() && std::isdigit(static_cast<unsigned char>(text.back()))) {
    text += "ms";
  }
  return duration_ms_value(name, text);
}

// The sizes of `policy set` into `policy`; errors name the flag.
Result<void> apply_sizes(const SetArgs& args, v1::HostPolicy& policy) {
  if (args.min_available) {
    auto bytes = size_value("--min-available", *args.min_available);
    HVMM_TRY(bytes);
    policy.set_min_available_bytes(*bytes);
  }
  if (args.max_vm_rss) {
    auto bytes = size_value("--max-vm-rss", *args.max_vm_rss);
    HVMM_TRY(bytes);
    policy.set_max_vm_rss_bytes(*bytes);
  }
  if (args.step) {
    auto bytes = size_value("--step", *args.step);
    HVMM_TRY(bytes);
    policy.set_step_bytes(*bytes);
  }
  return Ok();
}

// The times and counts of `policy set` into `policy`.
Result<void> apply_timing(const SetArgs& args, v1::HostPolicy& policy) {
  if (args.interval) {
    auto ms = milliseconds_value("--interval", *args.interval);
    HVMM_TRY(ms);
    policy.set_interval_ms(*ms);
  }
  if (args.balloon_timeout) {
    auto ms = milliseconds_value("--balloon-timeout", *args.balloon_timeout);
    HVMM_TRY(ms);
    policy.set_balloon_timeout_ms(*ms);
  }
  if (args.hold_rounds) {
    auto rounds = count_value("--hold-rounds", *args.hold_rounds);
    HVMM_TRY(rounds);
    policy.set_hold_rounds(*rounds);
  }
  return Ok();
}

// Every given flag of `policy set` applied to `policy` (the one in force).
Result<void> apply_flags(const SetArgs& args, v1::HostPolicy& policy) {
  if (args.enable || args.disable) {
    policy.set_enabled(args.enable);
  }
  if (args.dry_run) {
    policy.set_dry_run(*args.dry_run);
  }
  HVMM_TRY(apply_sizes(args, policy));
  HVMM_TRY(apply_timing(args, policy));
  if (args.max_pressure) {
    auto pct = number_value("--max-pressure", *args.max_pressure, 0, 100);
    HVMM_TRY(pct);
    policy.set_max_pressure_some_avg10(*pct);
  }
  if (args.hysteresis) {
    auto fraction = number_value("--hysteresis", *args.hysteresis, 0, 1);
    HVMM_TRY(fraction);
    policy.set_hysteresis(*fraction);
  }
  return Ok();
}

// GetHostPolicy, or the exit status of its failure in `status`.
std::optional<v1::GetHostPolicyResponse> get_policy(Context& context,
                                                    v1::HostPolicyService::Stub& stub,
                                                    int& status) {
  v1::GetHostPolicyResponse response;
  auto call = context.call();
  grpc::Status got = stub.GetHostPolicy(call.get(), v1::GetHostPolicyRequest{}, &response);
  if (!got.ok()) {
    status = context.finish(got);
    return std::nullopt;
  }
  return response;
}

int policy_show(Context& context) {
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  auto stub = v1::HostPolicyService::NewStub(channel);
  int status = 0;
  auto response = get_policy(context, *stub, status);
  if (!response) {
    return status;
  }
  if (context.json()) {
    context.print_json(*response);
  } else {
    print_policy_status(context.io().out, *response);
  }
  return 0;
}

// The flags are checked against a default policy first, so a bad value is exit 120 before
// anything is asked of the daemon.
int policy_set(Context& context, const SetArgs& args) {
  if (args.enable && args.disable) {
    return context.bad_argument("--enable and --disable: give one of them");
  }
  v1::HostPolicy check;
  if (auto checked = apply_flags(args, check); !checked) {
    return context.bad_argument(checked.error().message);
  }
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  auto stub = v1::HostPolicyService::NewStub(channel);
  int status = 0;
  auto current = get_policy(context, *stub, status);
  if (!current) {
    return status;
  }
  v1::SetHostPolicyRequest request;
  *request.mutable_policy() = current->policy();
  (void)apply_flags(args, *request.mutable_policy());  // the values were checked above
  v1::SetHostPolicyResponse response;
  auto call = context.call();
  grpc::Status set = stub->SetHostPolicy(call.get(), request, &response);
  if (!set.ok()) {
    return context.finish(set);
  }
  if (context.json()) {
    context.print_json(response);
  } else {
    print_host_policy(context.io().out, response.policy());
  }
  return 0;
}

int policy_watch(Context& context, bool history) {
  auto channel = context.channel();
  if (!channel) {
    return context.unavailable_status();
  }
  v1::WatchPolicyDecisionsRequest request;
  request.set_history(history);
  grpc::ClientContext call;
  auto reader = v1::HostPolicyService::NewStub(channel)->WatchDecisions(&call, request);
  v1::PolicyDecisionEvent event;
  while (reader->Read(&event)) {
    if (event.dropped_before() != 0) {
      context.io().err << "hvmm: " << event.dropped_before()
                       << " decisions dropped (this client read too slowly)\n";
    }
    if (context.json()) {
      context.print_json(event);
    } else {
      context.io().out << decision_line(event.decision()) << "\n";
    }
    context.io().out.flush();
  }
  return context.finish(reader->Finish());
}

// An optional string flag: set when given, even to "".
CLI::Option* add_value(CLI::App& command, const std::string& name,
                       std::optional<std::string>& value, const std::string& help,
                       const std::string& type) {
  return command
      .add_option_function<std::string>(
          name, [&value](const std::string& text) { value = text; }, help)
      ->type_name(type);
}

void declare_set(CLI::App& policy, Context& context) {
  auto args = std::make_shared<SetArgs>();
  CLI::App* set = policy.add_subcommand(
      "set", "Change the given settings of the policy in force (the rest stay) and show it");
  set->add_flag("--enable", args->enable, "Act on the targets");
  set->add_flag("--disable", args->disable,
                "Stop acting on them (what the policy took is given back)");
  set->add_flag_function(
      "--dry-run,!--no-dry-run", [args](int64_t count) { args->dry_run = count > 0; },
      "Only log the decisions, never act on them (--no-dry-run: act)");
  add_value(*set, "--min-available", args->min_available,
            "Take memory while the host's MemAvailable is below SIZE (0: no target)", "SIZE");
  add_value(*set, "--max-vm-rss", args->max_vm_rss,
            "Take memory while the VM processes' RSS is above SIZE (0: no target)", "SIZE");
  add_value(*set, "--max-pressure", args->max_pressure,
            "Take memory while memory pressure (PSI some avg10) is above PCT (0: no target)",
            "PCT");
  add_value(*set, "--interval", args->interval, "One round every MS (500, 500ms, 1s; 0: 1000 ms)",
            "MS");
  add_value(*set, "--step", args->step, "The most one decision moves for one VM (0: 64M)", "SIZE");
  add_value(*set, "--hysteresis", args->hysteresis,
            "Give back only with this margin past every target, 0..1 (0: 0.1)", "F");
  add_value(*set, "--hold-rounds", args->hold_rounds,
            "Rounds after taking before anything is given back (0: 5)", "N");
  add_value(*set, "--balloon-timeout", args->balloon_timeout,
            "A balloon that has not moved half its step by then is reclaimed from (0: 5000 ms)",
            "MS");
  set->callback([&context, args] {
    context.action = [&context, args] { return policy_set(context, *args); };
  });
}

}  // namespace

void add_policy_commands(CLI::App& app, Context& context) {
  CLI::App* policy = add_top_command(app, "policy");
  policy->require_subcommand(0, 1);
  policy->callback([&context, policy] {
    if (policy->get_subcommands().empty()) {
      context.action = [&context] { return policy_show(context); };
    }
  });
  declare_set(*policy, context);
  auto history = std::make_shared<bool>(false);
  CLI::App* watch = policy->add_subcommand(
      "watch", "Print the policy's decisions as they are made (time, VM, action, bytes, why)");
  watch->add_flag("--history", *history, "The last 100 decisions first");
  watch->callback([&context, history] {
    context.action = [&context, history] { return policy_watch(context, *history); };
  });
}

}  // namespace hvmm::client
