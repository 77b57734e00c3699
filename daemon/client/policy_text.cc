// Text for the host memory policy.
#include "hvmm/daemon/client/policy_text.h"

#include <fmt/format.h>

#include "hvmm/daemon/args/human.h"

namespace hvmm::client {
namespace {

namespace v1 = hvmm::v1;

// A target as a bound: "-" when it is 0 (not enforced).
std::string size_bound(uint64_t bytes) {
  return bytes == 0 ? std::string("-") : args::human_size(bytes);
}

std::string percent(double value) {
  return fmt::format("{:.1f}%", value);
}

std::string yes_no(bool value) {
  return value ? "yes" : "no";
}

}  // namespace

std::string policy_action_word(v1::PolicyAction action) {
  return enum_word(v1::PolicyAction_Name(action), "POLICY_ACTION_");
}

std::string policy_state_word(v1::PolicyState state) {
  return enum_word(v1::PolicyState_Name(state), "POLICY_STATE_");
}

void print_host_policy(std::ostream& out, const v1::HostPolicy& policy) {
  out << fmt::format("policy: {}{}\n", policy.enabled() ? "enabled" : "disabled",
                     policy.dry_run() ? " (dry run: decisions logged, not acted on)" : "");
  out << fmt::format(
      "targets: available >= {}, VM RSS <= {}, pressure (some avg10) <= {}\n",
      size_bound(policy.min_available_bytes()), size_bound(policy.max_vm_rss_bytes()),
      policy.max_pressure_some_avg10() == 0 ? std::string("-")
                                            : percent(policy.max_pressure_some_avg10()));
  out << fmt::format(
      "interval {} ms, step {}, hysteresis {:g}, hold {} rounds, balloon timeout {} ms\n",
      policy.interval_ms(), args::human_size(policy.step_bytes()), policy.hysteresis(),
      policy.hold_rounds(), policy.balloon_timeout_ms());
}

std::string host_sample_line(const v1::HostSample& sample) {
  if (sample.time_unix_ns() == 0) {
    return "host: not sampled yet";
  }
  const std::string pressure =
      sample.pressure_available()
          ? fmt::format("pressure some {} full {}", percent(sample.pressure_some_avg10()),
                        percent(sample.pressure_full_avg10()))
          : std::string("pressure n/a");
  return fmt::format("host at {}: total {}, available {}, VM RSS {} (warm pool {}), {}",
                     format_time(sample.time_unix_ns()), args::human_size(sample.mem_total_bytes()),
                     args::human_size(sample.mem_available_bytes()),
                     args::human_size(sample.vm_rss_bytes()),
                     args::human_size(sample.warm_pool_rss_bytes()), pressure);
}

Table policy_vm_table(const v1::GetHostPolicyResponse& response) {
  Table table({"VM", "PRIORITY", "FLOOR", "IDLE", "WORKING-SET", "SOURCE", "RSS", "BALLOON",
               "RECLAIM", "COOPERATES"});
  for (const v1::VmPolicyStatus& vm : response.vms()) {
    const bool exempt = vm.spec().exempt();
    table.add({vm.name(), exempt ? "exempt" : std::to_string(vm.spec().priority()),
               args::human_size(vm.spec().floor_bytes()), args::human_size(vm.idle_bytes()),
               args::human_size(vm.working_set_bytes()),
               vm.idle_source().empty() ? "-" : vm.idle_source(), args::human_size(vm.rss_bytes()),
               args::human_size(vm.taken_balloon_bytes()),
               vm.reclaim_available() ? args::human_size(vm.taken_reclaim_bytes()) : "-",
               yes_no(vm.balloon_cooperates())});
  }
  return table;
}

std::string decision_line(const v1::PolicyDecision& decision) {
  std::string line = fmt::format("{} #{} {} {} {}: {}", format_time(decision.time_unix_ns()),
                                 decision.sequence(), decision.vm().empty() ? "-" : decision.vm(),
                                 policy_action_word(decision.action()),
                                 args::human_size(decision.bytes()), decision.reason());
  const bool balloon = decision.action() == v1::POLICY_ACTION_INFLATE ||
                       decision.action() == v1::POLICY_ACTION_DEFLATE;
  if (balloon) {
    line += fmt::format(" (balloon target {})", args::human_size(decision.balloon_target_bytes()));
  }
  if (decision.dry_run()) {
    line += " (dry run)";
  }
  if (!decision.error().empty()) {
    line += " error: " + decision.error();
  }
  return line;
}

void print_policy_status(std::ostream& out, const v1::GetHostPolicyResponse& response) {
  print_host_policy(out, response.policy());
  out << fmt::format("state: {} after {} rounds\n", policy_state_word(response.state()),
                     response.rounds());
  out << host_sample_line(response.sample()) << "\n";
  if (response.vms_size() == 0) {
    out << "no VMs\n";
  } else {
    out << "\n";
    policy_vm_table(response).print(out);
  }
  out << "\n";
  if (response.recent_size() == 0) {
    out << "no decisions yet\n";
    return;
  }
  out << "recent decisions (oldest first):\n";
  for (const v1::PolicyDecision& decision : response.recent()) {
    out << decision_line(decision) << "\n";
  }
}

}  // namespace hvmm::client
