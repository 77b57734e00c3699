// Decisions as channel requests (actuator.h).
#include "hvmm/daemon/server/policy/actuator.h"

#include <algorithm>
#include <sstream>

namespace hvmm::daemon::policy {
namespace {

namespace sv = hvmm::supervisor::v1;

constexpr uint64_t kPage = 4096;

sv::Request balloon_request(const Decision& decision) {
  sv::Request request;
  auto* set = request.mutable_set_balloon_target();
  set->set_name(decision.vm);
  set->set_target_bytes(decision.balloon_target_bytes);
  return request;
}

sv::Request set_policy_request(const std::string& vm, const std::string& policy) {
  sv::Request request;
  request.mutable_reclaim()->set_name(vm);
  request.mutable_reclaim()->set_set_policy(policy);
  return request;
}

sv::Request epoch_request(const std::string& vm) {
  sv::Request request;
  request.mutable_reclaim()->set_name(vm);
  request.mutable_reclaim()->set_epochs(1);
  return request;
}

}  // namespace

std::string reclaim_policy_with_target(const std::string& policy, uint64_t target_bytes) {
  std::istringstream items(policy);
  std::string item;
  std::string out;
  while (std::getline(items, item, ',')) {
    if (item.empty() || item.rfind("target=", 0) == 0) {
      continue;
    }
    out += item + ",";
  }
  // reclaim refuses target=0: one page is as good as nothing.
  return out + "target=" + std::to_string(std::max(target_bytes, kPage));
}

std::vector<sv::Request> requests_for(const Decision& decision) {
  switch (decision.action) {
    case hvmm::v1::POLICY_ACTION_INFLATE:
    case hvmm::v1::POLICY_ACTION_DEFLATE:
      return {balloon_request(decision)};
    case hvmm::v1::POLICY_ACTION_RECLAIM:
      return {set_policy_request(decision.vm,
                                 reclaim_policy_with_target(decision.reclaim_policy,
                                                            decision.reclaim_target_bytes)),
              epoch_request(decision.vm)};
    case hvmm::v1::POLICY_ACTION_STOP_RECLAIM:
      return {set_policy_request(decision.vm, decision.reclaim_policy)};
    default:
      break;
  }
  return {};
}

}  // namespace hvmm::daemon::policy
