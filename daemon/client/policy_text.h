// The host memory policy as people read it (`hvmm policy`, `policy set`, `policy watch`): the
// policy's settings, the host sample, the per-VM table and one line per decision.
#pragma once

#include <ostream>
#include <string>

#include "hvmm/daemon/client/text.h"
#include "hvmm/v1/policy.pb.h"

namespace hvmm::client {

// "inflate", "stop-reclaim", ... for a PolicyAction; "taking", "met", ... for a PolicyState.
std::string policy_action_word(hvmm::v1::PolicyAction action);
std::string policy_state_word(hvmm::v1::PolicyState state);

// The policy's settings in three lines: on/off and dry run, the targets (0: "-"), and how it
// meets them (interval, step, hysteresis, hold, balloon timeout).
void print_host_policy(std::ostream& out, const hvmm::v1::HostPolicy& policy);

// One line of the host as a round saw it: total, available, VM RSS, pressure.
std::string host_sample_line(const hvmm::v1::HostSample& sample);

// VM PRIORITY FLOOR IDLE WORKING-SET SOURCE RSS BALLOON RECLAIM COOPERATES, a row per VM.
Table policy_vm_table(const hvmm::v1::GetHostPolicyResponse& response);

// "2024-06-11T12:00:00.123456Z #7 vm-a inflate 64.0 MiB: reason" (then " (dry run)",
// " target 96.0 MiB", " error: ..." when they apply).
std::string decision_line(const hvmm::v1::PolicyDecision& decision);

// All of GetHostPolicy: the settings, state and rounds, the sample, the VMs, the decisions.
void print_policy_status(std::ostream& out, const hvmm::v1::GetHostPolicyResponse& response);

}  // namespace hvmm::client
