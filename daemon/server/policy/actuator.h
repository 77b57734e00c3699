// The actuator: what a decision asks of a VM process, as channel requests sent in order.
//
// INFLATE and DEFLATE set the balloon target (SetBalloonTarget, no wait: the next rounds
// watch the balloon). RECLAIM sets the VM's own reclaim policy with a target (reclaim's RSS
// goal: the memfd's allocated bytes plus its pool's) lowered by the decision's bytes, then
// runs one epoch at once, so the cold pages go now rather than at the next period. The idle
// bytes the engine takes are those idle for at least the policy's cold threshold, exactly
// reclaim's candidates, so nothing of the working set is asked for. STOP_RECLAIM sets the
// VM's own policy back. NOTHING_LEFT asks nothing.
#pragma once

#include <string>
#include <vector>

#include "hvmm/daemon/server/policy/engine.h"
#include "hvmm/supervisor/v1/channel.pb.h"

namespace hvmm::daemon::policy {

// `policy` (the --reclaim syntax) with its target= replaced by `target_bytes`.
std::string reclaim_policy_with_target(const std::string& policy, uint64_t target_bytes);

// The requests carrying out `decision` on its VM, in order.
std::vector<hvmm::supervisor::v1::Request> requests_for(const Decision& decision);

}  // namespace hvmm::daemon::policy
