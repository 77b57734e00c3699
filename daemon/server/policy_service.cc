// hvmm.v1.HostPolicyService (services.h): the handlers check the request, then post to the
// loop, where the HostPolicy lives.
#include "hvmm/daemon/server/host_policy.h"
#include "hvmm/daemon/server/policy/settings.h"
#include "hvmm/daemon/server/services.h"

namespace hvmm::daemon {

namespace {

constexpr uint32_t kDefaultDecisionBuffer = 256;

grpc::Status no_policy() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the host policy is not running");
}

}  // namespace

grpc::ServerUnaryReactor* HostPolicyServiceImpl::GetHostPolicy(
    grpc::CallbackServerContext* context, const hvmm::v1::GetHostPolicyRequest*,
    hvmm::v1::GetHostPolicyResponse* response) {
  if (backend_.policy == nullptr) {
    return finish_now(context, no_policy());
  }
  auto* reactor = context->DefaultReactor();
  backend_.on_loop([this, reactor, response] {
    *response = backend_.policy->status();
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* HostPolicyServiceImpl::SetHostPolicy(
    grpc::CallbackServerContext* context, const hvmm::v1::SetHostPolicyRequest* request,
    hvmm::v1::SetHostPolicyResponse* response) {
  if (backend_.policy == nullptr) {
    return finish_now(context, no_policy());
  }
  if (auto checked = policy::check_host_policy(request->policy()); !checked) {
    return finish_now(context, to_status(checked.error()));
  }
  auto* reactor = context->DefaultReactor();
  backend_.on_loop([this, reactor, response, wanted = request->policy()] {
    *response->mutable_policy() = backend_.policy->set(wanted);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerWriteReactor<hvmm::v1::PolicyDecisionEvent>* HostPolicyServiceImpl::WatchDecisions(
    grpc::CallbackServerContext*, const hvmm::v1::WatchPolicyDecisionsRequest* request) {
  if (backend_.policy == nullptr) {
    return finish_stream_now<hvmm::v1::PolicyDecisionEvent>(no_policy());
  }
  if (auto checked = check_stream_buffer("buffer", request->buffer()); !checked) {
    return finish_stream_now<hvmm::v1::PolicyDecisionEvent>(to_status(checked.error()));
  }
  auto id = std::make_shared<uint64_t>(0);
  QueuedStream<hvmm::v1::PolicyDecisionEvent>::Options options;
  options.capacity = request->buffer() != 0 ? request->buffer() : kDefaultDecisionBuffer;
  options.policy = OverflowPolicy::kDropMessages;
  options.mark_dropped = [](hvmm::v1::PolicyDecisionEvent& event, uint64_t dropped) {
    event.set_dropped_before(dropped);
  };
  options.on_closed = [this, id] {
    backend_.on_loop([this, id] { backend_.policy->unwatch(*id); });
  };
  auto started = QueuedStream<hvmm::v1::PolicyDecisionEvent>::start(std::move(options));
  backend_.on_loop([this, id, history = request->history(), state = started.state] {
    backend_.policy->watch(history, state, id.get());
  });
  return started.reactor;
}

}  // namespace hvmm::daemon
