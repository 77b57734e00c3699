// Request dispatch and the requests that need no group of their own (request_handlers.h).
#include "hvmm/daemon/vmproc/request_handlers.h"

#include <vector>

#include "hvmm/daemon/vmproc/request_checks.h"

namespace hvmm::daemon::vmproc {
namespace {

using hvmm::supervisor::v1::Request;
using hvmm::supervisor::v1::Response;

// A rollover of the daemon's VMID allocator: every stage-2 TLB entry goes.
Result<void> flush_stage2_tlb(VmContext& vm, Response& response) {
  vm.machine.flush_stage2_tlb_all();
  response.mutable_empty();
  return Ok();
}

// The union of the daemon's watchers' filters; none (and not all): stop forwarding.
Result<void> forward_notifier_events(VmContext& vm,
                                     const hvmm::supervisor::v1::ForwardNotifierEvents& request,
                                     Response& response) {
  if (request.all()) {
    HVMM_TRY(vm.watch.forward_all());
  } else {
    std::vector<IpaRange> filters;
    for (const auto& filter : request.filters()) {
      filters.push_back(IpaRange{Ipa(filter.start()), filter.size()});
    }
    HVMM_TRY(vm.watch.forward(filters));
  }
  response.mutable_empty();
  return Ok();
}

// One case per body; a body this build does not know (a newer daemon) is refused.
Result<void> dispatch(VmContext& vm, const Request& request, Response& response) {
  switch (request.body_case()) {
    case Request::kGetMemoryStats:
      return handlers::get_memory_stats(vm, request.get_memory_stats(), response);
    case Request::kSetBalloonTarget:
      return handlers::set_balloon_target(vm, request.set_balloon_target(), response);
    case Request::kReclaim:
      return handlers::reclaim(vm, request.reclaim(), response);
    case Request::kDumpStage2:
      return handlers::dump_stage2(vm, request.dump_stage2(), response);
    case Request::kGetDirtyLog:
      return handlers::get_dirty_log(vm, request.get_dirty_log(), response);
    case Request::kTlbShootdown:
      return handlers::tlb_shootdown(vm, request.tlb_shootdown(), response);
    case Request::kListSubscriptions:
      return handlers::list_subscriptions(vm, request.list_subscriptions(), response);
    case Request::kAge:
      return handlers::age(vm, request.age(), response);
    case Request::kInvalidate:
      return handlers::invalidate(vm, request.invalidate(), response);
    case Request::kStartWorkload:
      return handlers::start_workload(vm, request.start_workload(), response);
    case Request::kVerifyWorkload:
      return handlers::verify_workload(vm, request.verify_workload(), response);
    case Request::kExitWorkload:
      return handlers::exit_workload(vm, request.exit_workload(), response);
    case Request::kProbe:
      return handlers::probe(vm, request.probe(), response);
    case Request::kFlushStage2Tlb:
      return flush_stage2_tlb(vm, response);
    case Request::kShutdown:
      return handlers::shutdown(vm, request.shutdown(), response);
    case Request::kForwardNotifierEvents:
      return forward_notifier_events(vm, request.forward_notifier_events(), response);
    case Request::BODY_NOT_SET:
      break;
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "body: the request has no body this VM process knows (unset or newer)");
}

}  // namespace

Response serve_request(VmContext& vm, const Request& request) {
  Response response;
  response.set_id(request.id());
  response.set_code(kRpcOk);
  if (vm.ended.load()) {
    fail(response, make_error(ErrorCode::kUnavailable, "the VM has ended"));
    return response;
  }
  if (auto served = dispatch(vm, request, response); !served) {
    fail(response, served.error());
  }
  return response;
}

}  // namespace hvmm::daemon::vmproc
