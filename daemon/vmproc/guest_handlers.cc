// Requests the guest kernel serves over the control channel (base/control_protocol.h):
// workloads, probes, stage-1 TLB flushes and shutdown.
#include <chrono>

#include "hvmm/base/control_protocol.h"
#include "hvmm/daemon/vmproc/request_checks.h"
#include "hvmm/daemon/vmproc/request_handlers.h"
#include "hvmm/vmm/machine/exit_status.h"

namespace hvmm::daemon::vmproc::handlers {
namespace {

using control::ControlRequest;
using control::ControlResponse;
using control::Op;
using control::Status;
using std::chrono::seconds;

// How long the guest has to answer: workloads touch all their memory (minutes under
// emulation); the rest is quick unless the guest is busy with a workload.
constexpr seconds kWorkloadTimeout{600};
constexpr seconds kRequestTimeout{120};
// A shutdown the guest does not answer in this time is done by the VMM instead.
constexpr seconds kShutdownTimeout{5};
// ProbeArgs: the guest maps IPAs below 2^52 (control_protocol.h).
constexpr uint64_t kProbeLimit = uint64_t{1} << 52;

// The guest's refusal as the request's field would have caused it.
Error guest_status_error(Status status, const char* field) {
  switch (status) {
    case Status::kOk:
      break;
    case Status::kBadRequest:
      return make_error(ErrorCode::kInternal,
                        "the guest kernel did not understand the request (protocol mismatch)");
    case Status::kBadArguments:
      return make_error(ErrorCode::kInvalidArgument, "{}: the guest kernel refused it", field);
    case Status::kNoSuchWorkload:
      return make_error(ErrorCode::kNotFound, "workload: the guest holds no such workload");
    case Status::kOutOfMemory:
      return make_error(ErrorCode::kResourceExhausted,
                        "{}: the guest kernel has not enough free memory for it", field);
    case Status::kMismatch:
      return make_error(ErrorCode::kDataLoss,
                        "the workload read back contents that differ from what it wrote");
    case Status::kBusy:
      return make_error(ErrorCode::kResourceExhausted,
                        "hold: the guest kernel holds as many workloads as it can");
  }
  return make_error(ErrorCode::kInternal, "the guest kernel answered status {}",
                    static_cast<int>(status));
}

// Ask the guest; a VM without the channel is FAILED_PRECONDITION.
Result<ControlResponse> call_guest(VmContext& vm, ControlRequest request, seconds timeout) {
  vmm::ControlChannel* channel = vm.machine.control_channel();
  if (channel == nullptr) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "the VM has no control channel (spec.control_channel is false)");
  }
  auto answer = channel->call(request, std::chrono::steady_clock::now() + timeout);
  if (!answer) {
    return make_error(answer.error().code, "the guest kernel did not answer: {}",
                      answer.error().message);
  }
  return answer;
}

// call_guest(), then the guest's status as an error naming `field`.
Result<ControlResponse> call_guest_ok(VmContext& vm, ControlRequest request, seconds timeout,
                                      const char* field) {
  auto answer = call_guest(vm, request, timeout);
  HVMM_TRY(answer);
  if (answer->status != Status::kOk) {
    return guest_status_error(answer->status, field);
  }
  return answer;
}

// The proto's workload kinds are control::WorkloadKind's, number for number.
Result<control::WorkloadKind> workload_kind(hvmm::v1::WorkloadKind kind) {
  switch (kind) {
    case hvmm::v1::WORKLOAD_KIND_TOUCH_SEQUENTIAL:
      return control::WorkloadKind::kTouchSequential;
    case hvmm::v1::WORKLOAD_KIND_TOUCH_RANDOM:
      return control::WorkloadKind::kTouchRandom;
    case hvmm::v1::WORKLOAD_KIND_TOUCH_MIX:
      return control::WorkloadKind::kTouchMix;
    default:
      break;
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "kind: must be TOUCH_SEQUENTIAL, TOUCH_RANDOM or TOUCH_MIX (got {})",
                    static_cast<int>(kind));
}

const char* flush_method(uint32_t method) {
  switch (method) {
    case 1:
      return "invlpg";
    case 2:
      return "address-space";
    case 3:
      return "full";
    default:
      return "unknown";
  }
}

// The stage-1 target as TlbFlushArgs, checked field by field.
Result<control::TlbFlushArgs> flush_args(const hvmm::v1::Stage1Target& target) {
  switch (target.scope()) {
    case hvmm::v1::STAGE1_SCOPE_RANGE:
      if (!is_aligned(target.va(), kPageSize)) {
        return make_error(ErrorCode::kInvalidArgument, "stage1.va: {:#x} is not page aligned",
                          target.va());
      }
      if (target.length() == 0 || !is_aligned(target.length(), kPageSize) ||
          target.va() + target.length() < target.va()) {
        return make_error(ErrorCode::kInvalidArgument,
                          "stage1.length: {:#x} must be a non-zero multiple of 4 KiB that does "
                          "not overflow",
                          target.length());
      }
      return control::TlbFlushArgs{control::TlbScope::kRange, target.workload(), target.va(),
                                   target.length()};
    case hvmm::v1::STAGE1_SCOPE_ADDRESS_SPACE:
      return control::TlbFlushArgs{control::TlbScope::kAddressSpace, target.workload(), 0, 0};
    case hvmm::v1::STAGE1_SCOPE_KERNEL_ALL:
      return control::TlbFlushArgs{control::TlbScope::kKernelAll, 0, 0, 0};
    default:
      break;
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "stage1.scope: must be RANGE, ADDRESS_SPACE or KERNEL_ALL (got {})",
                    static_cast<int>(target.scope()));
}

}  // namespace

Result<void> start_workload(VmContext& vm, const hvmm::v1::StartWorkloadRequest& request,
                            Response& response) {
  auto kind = workload_kind(request.kind());
  HVMM_TRY(kind);
  if (request.bytes() == 0 || !is_aligned(request.bytes(), kPageSize)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "bytes: must be a non-zero multiple of 4 KiB (got {})", request.bytes());
  }
  ControlRequest call{};
  call.op = Op::kWorkloadStart;
  call.args.workload_start = {*kind, request.hold() ? control::kWorkloadHold : 0u, request.bytes(),
                              request.seed()};
  auto answer = call_guest_ok(vm, call, kWorkloadTimeout, "bytes");
  HVMM_TRY(answer);
  const auto& result = answer->result.workload_start;
  auto& out = *response.mutable_start_workload();
  out.set_workload(result.workload);
  out.set_cpu(result.cpu);
  out.set_pages(result.pages);
  out.set_checksum(result.checksum);
  out.set_duration_ns(result.duration_ns);
  return Ok();
}

// A mismatch is a result (mismatched_pages says how many), not an error.
Result<void> verify_workload(VmContext& vm, const hvmm::v1::WorkloadRequest& request,
                             Response& response) {
  ControlRequest call{};
  call.op = Op::kWorkloadVerify;
  call.args.workload_id = {request.workload()};
  auto answer = call_guest(vm, call, kWorkloadTimeout);
  HVMM_TRY(answer);
  if (answer->status != Status::kOk && answer->status != Status::kMismatch) {
    return guest_status_error(answer->status, "workload");
  }
  const auto& result = answer->result.workload_verify;
  auto& out = *response.mutable_verify_workload();
  out.set_pages(result.pages);
  out.set_mismatched_pages(result.mismatched_pages);
  out.set_checksum(result.checksum);
  out.set_duration_ns(result.duration_ns);
  return Ok();
}

Result<void> exit_workload(VmContext& vm, const hvmm::v1::WorkloadRequest& request,
                           Response& response) {
  ControlRequest call{};
  call.op = Op::kWorkloadExit;
  call.args.workload_id = {request.workload()};
  HVMM_TRY(call_guest_ok(vm, call, kRequestTimeout, "workload"));
  response.mutable_exit_workload();
  return Ok();
}

Result<void> probe(VmContext& vm, const hvmm::v1::ProbeRequest& request, Response& response) {
  if (!is_aligned(request.ipa(), 4) || request.ipa() >= kProbeLimit) {
    return make_error(ErrorCode::kInvalidArgument,
                      "ipa: {:#x} must be 4-byte aligned and below 2^52", request.ipa());
  }
  ControlRequest call{};
  call.op = Op::kProbe;
  call.args.probe = {request.ipa(), request.write() ? control::kProbeWrite : 0u, request.value()};
  auto answer = call_guest_ok(vm, call, kRequestTimeout, "ipa");
  HVMM_TRY(answer);
  response.mutable_probe()->set_value(answer->result.probe.value);
  return Ok();
}

Result<void> stage1_shootdown(VmContext& vm, const hvmm::v1::Stage1Target& target,
                              hvmm::v1::TlbShootdownResponse& result) {
  auto args = flush_args(target);
  HVMM_TRY(args);
  ControlRequest call{};
  call.op = Op::kTlbFlush;
  call.args.tlb_flush = *args;
  auto answer = call_guest_ok(vm, call, kRequestTimeout, "stage1");
  HVMM_TRY(answer);
  const auto& flushed = answer->result.tlb_flush;
  auto& out = *result.mutable_stage1();
  out.set_cpus(flushed.cpus);
  out.set_method(flush_method(flushed.method));
  out.set_pages(flushed.pages);
  out.set_guest_ns(flushed.duration_ns);
  return Ok();
}

// The guest shuts down when it can; otherwise (no channel, no answer) the VMM ends the VM.
Result<void> shutdown(VmContext& vm, const hvmm::supervisor::v1::Shutdown& request,
                      Response& response) {
  if (request.exit_status() < 0 || request.exit_status() > 255) {
    return make_error(ErrorCode::kInvalidArgument, "exit_status: must be 0..255 (got {})",
                      request.exit_status());
  }
  response.mutable_empty();
  if (vm.machine.control_channel() == nullptr) {
    vm.machine.request_stop(request.exit_status(), "shut down by the daemon (no control channel)");
    return Ok();
  }
  ControlRequest call{};
  call.op = Op::kShutdown;
  call.args.shutdown = {static_cast<uint32_t>(request.exit_status())};
  if (auto answer = call_guest_ok(vm, call, kShutdownTimeout, "exit_status"); !answer) {
    vm.machine.request_stop(
        request.exit_status(),
        fmt::format("shut down by the daemon; the guest did not: {}", answer.error().message));
  }
  return Ok();
}

}  // namespace hvmm::daemon::vmproc::handlers
