// Engine: one round of the host memory policy, pure (no I/O, no clock of its own).
//
// A round takes the host's sample, the views of the running VMs that answered in time and
// the time, and returns decisions; the engine remembers what it took from each VM.
// - Over a target (any enforced target of HostPolicy violated): the deficit (the bytes
//   missing, or one step for pressure, which has no byte figure) is taken from the VMs that
//   are not exempt, ordered by (priority ascending, idle bytes descending, name): at most
//   step_bytes per VM per round, never more than its idle bytes (less what a balloon still
//   inflating was asked for), never below its floor. INFLATE (the balloon target rises)
//   where the VM has a balloon that cooperates, else RECLAIM (a reclaim target on the VM's
//   own reclaim policy, then an epoch) where it has reclaim. A balloon that moved less than
//   half of an inflation within balloon_timeout_ms does not cooperate any more (until the
//   policy has given this VM everything back). Nothing could be taken: one NOTHING_LEFT,
//   again only after a round that took or was not over.
// - Room (every enforced target met with the hysteresis margin, and hold_rounds rounds since
//   the last take): give back in the reverse order, highest priority first, at most the
//   room's surplus per round (one step for pressure): DEFLATE by at most step_bytes towards
//   the target the user had set (the baseline), then STOP_RECLAIM (the VM's own policy back).
// - Between: HOLDING, no decision. Disabled: everything taken is given back at once (OFF).
// Only what the policy took is given back: a balloon target it did not set stays; when the
// target found differs from the one the policy set, the user set it and the policy's part
// is forgotten (the new target is the user's).
// With dry_run the decisions are made but the engine's holds are left as they were.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "hvmm/daemon/server/policy/host_sample.h"
#include "hvmm/daemon/server/policy/vm_view.h"
#include "hvmm/v1/policy.pb.h"

namespace hvmm::daemon::policy {

struct Decision {
  hvmm::v1::PolicyAction action = hvmm::v1::POLICY_ACTION_UNSPECIFIED;
  std::string vm;  // empty for NOTHING_LEFT
  uint64_t bytes = 0;
  std::string reason;
  uint64_t vm_idle_bytes = 0;
  uint64_t vm_working_set_bytes = 0;
  uint64_t balloon_target_bytes = 0;  // INFLATE, DEFLATE: the target to set
  uint64_t reclaim_target_bytes = 0;  // RECLAIM: reclaim's target
  std::string reclaim_policy;         // RECLAIM: the policy to set; STOP_RECLAIM: the VM's own
};

// What the policy holds of one VM.
struct VmHold {
  uint64_t baseline_target = 0;  // the balloon target the user had set
  uint64_t policy_target = 0;    // the target the policy set last (meaningful with taken)
  uint64_t balloon_taken = 0;    // policy_target - baseline_target
  bool inflating = false;        // an inflation is being watched
  uint64_t inflate_from = 0;     // the balloon's actual bytes when it was asked
  uint64_t inflate_at_ms = 0;
  bool balloon_cooperates = true;
  bool reclaiming = false;        // the VM runs the policy's reclaim target
  std::string own_policy;         // its reclaim policy before, to restore
  uint64_t reclaim_target = 0;    // reclaim's target as the policy set it
  uint64_t reclaimed_before = 0;  // reclaimed bytes when the policy began reclaiming
  uint64_t reclaim_taken = 0;     // reclaimed since then (the last view)

  bool holds_anything() const { return balloon_taken != 0 || reclaiming; }
};

struct Round {
  hvmm::v1::PolicyState state = hvmm::v1::POLICY_STATE_UNSPECIFIED;
  std::vector<Decision> decisions;
};

class Engine {
 public:
  // One round. `policy` has its defaults filled (settings.h); `now_ms` is a steady clock.
  Round decide(const hvmm::v1::HostPolicy& policy, const HostSample& sample,
               const std::vector<VmView>& vms, uint64_t now_ms);

  // A decision that could not be carried out: undo what decide() assumed.
  void failed(const Decision& decision);

  // Forget the VMs that are not in `running` (stopped: their memory went with them).
  void retain(const std::set<std::string>& running);

  const std::map<std::string, VmHold>& holds() const { return holds_; }
  uint64_t rounds() const { return rounds_; }
  hvmm::v1::PolicyState state() const { return state_; }

 private:
  struct Context;
  void take(Context& context, uint64_t deficit);
  void give_back(Context& context, uint64_t budget);
  void give_everything_back(Context& context);
  void observe(Context& context);

  std::map<std::string, VmHold> holds_;
  uint64_t rounds_ = 0;
  uint64_t last_take_round_ = 0;
  bool took_ever_ = false;
  bool nothing_left_ = false;  // NOTHING_LEFT said, not yet cleared
  hvmm::v1::PolicyState state_ = hvmm::v1::POLICY_STATE_OFF;
};

// The bytes missing to meet every enforced target (one step when only pressure is over), 0
// when every target is met; `why` says which target and by how much.
uint64_t deficit_bytes(const hvmm::v1::HostPolicy& policy, const HostSample& sample,
                       std::string* why);

// The bytes that may be given back with every enforced target kept beyond its margin (one
// step for pressure), or nullopt-like 0 with `room` false when some target is inside it.
uint64_t room_bytes(const hvmm::v1::HostPolicy& policy, const HostSample& sample, bool* room,
                    std::string* why);

// The order VMs give in: (priority ascending, idle descending, name).
bool gives_before(const VmView& a, const VmView& b);

}  // namespace hvmm::daemon::policy
