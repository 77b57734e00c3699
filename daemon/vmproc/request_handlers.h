// The VM process's request handlers: each channel Request body mapped to the Machine
// (channel.proto; the field names in error messages are the request's own).
//
// Every failure is a Response with a google.rpc.Code and a message naming the field:
// INVALID_ARGUMENT for a bad field, FAILED_PRECONDITION for a request the VM cannot serve
// as it is built ("the VM has no balloon"), UNAVAILABLE for what the VMM does not offer
// (yet) or once the VM ended, DEADLINE_EXCEEDED for a balloon target not met in wait_ms.
// Handlers may block (a balloon wait, a guest's answer), each for a bounded time; they run on
// the request pool's workers, never on a VM thread.
#pragma once

#include "hvmm/daemon/vmproc/vm_context.h"
#include "hvmm/supervisor/v1/channel.pb.h"

namespace hvmm::daemon::vmproc {

// Serve `request`: the Response carries its id.
hvmm::supervisor::v1::Response serve_request(VmContext& vm,
                                             const hvmm::supervisor::v1::Request& request);

// The groups serve_request() dispatches to (memory_handlers.cc, notifier_handlers.cc,
// guest_handlers.cc). Each fills the body of `response` or returns the Error to report.
namespace handlers {
using hvmm::supervisor::v1::Response;
Result<void> get_memory_stats(VmContext& vm, const hvmm::v1::GetMemoryStatsRequest& request,
                              Response& response);
Result<void> set_balloon_target(VmContext& vm, const hvmm::v1::SetBalloonTargetRequest& request,
                                Response& response);
Result<void> reclaim(VmContext& vm, const hvmm::v1::ReclaimRequest& request, Response& response);
Result<void> dump_stage2(VmContext& vm, const hvmm::v1::DumpStage2Request& request,
                         Response& response);
Result<void> get_dirty_log(VmContext& vm, const hvmm::v1::GetDirtyLogRequest& request,
                           Response& response);
Result<void> tlb_shootdown(VmContext& vm, const hvmm::v1::TlbShootdownRequest& request,
                           Response& response);
Result<void> list_subscriptions(VmContext& vm, const hvmm::v1::ListSubscriptionsRequest& request,
                                Response& response);
Result<void> age(VmContext& vm, const hvmm::v1::AgeRequest& request, Response& response);
Result<void> invalidate(VmContext& vm, const hvmm::v1::InvalidateRequest& request,
                        Response& response);
Result<void> start_workload(VmContext& vm, const hvmm::v1::StartWorkloadRequest& request,
                            Response& response);
Result<void> verify_workload(VmContext& vm, const hvmm::v1::WorkloadRequest& request,
                             Response& response);
Result<void> exit_workload(VmContext& vm, const hvmm::v1::WorkloadRequest& request,
                           Response& response);
Result<void> probe(VmContext& vm, const hvmm::v1::ProbeRequest& request, Response& response);
Result<void> stage1_shootdown(VmContext& vm, const hvmm::v1::Stage1Target& target,
                              hvmm::v1::TlbShootdownResponse& result);
Result<void> shutdown(VmContext& vm, const hvmm::supervisor::v1::Shutdown& request,
                      Response& response);
}  // namespace handlers

}  // namespace hvmm::daemon::vmproc
