// The daemon's checks of forwarded requests (request_check.h).
#include "hvmm/daemon/server/request_check.h"

#include "hvmm/daemon/server/spec_check.h"
#include "hvmm/vmm/reclaim/reclaim_policy.h"

namespace hvmm::daemon {
namespace {

Error invalid(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

// The guest RAM figure for messages.
std::string ram_of(const VmFacts& vm) {
  return fmt::format("VM '{}' has {} bytes of RAM", vm.name, vm.memory_bytes);
}

Result<void> needs_control_channel(std::string_view what, const VmFacts& vm) {
  if (!vm.control_channel) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "{}: VM '{}' was created without the control channel "
                      "(spec.control_channel false)",
                      what, vm.name);
  }
  return Ok();
}

Result<void> needs_balloon(std::string_view what, const VmFacts& vm) {
  if (!vm.balloon) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "{}: VM '{}' has no balloon (spec.balloon.disabled)", what, vm.name);
  }
  return Ok();
}

Result<void> check_target(uint64_t target, const VmFacts& vm) {
  if (target >= vm.memory_bytes) {
    return invalid(
        fmt::format("target_bytes: {} is not below the RAM size ({})", target, ram_of(vm)));
  }
  return Ok();
}

Result<void> check_wait(std::string_view field, uint32_t ms) {
  if (ms > kMaxWaitMs) {
    return invalid(
        fmt::format("{}: {} ms is more than the {} ms a request may wait", field, ms, kMaxWaitMs));
  }
  return Ok();
}

Result<void> check_stage1(const hvmm::v1::Stage1Target& target) {
  switch (target.scope()) {
    case hvmm::v1::STAGE1_SCOPE_KERNEL_ALL:
      return Ok();
    case hvmm::v1::STAGE1_SCOPE_ADDRESS_SPACE:
      if (target.workload() == 0) {
        return invalid("stage1.workload: name a held workload (StartWorkload with hold)");
      }
      return Ok();
    case hvmm::v1::STAGE1_SCOPE_RANGE: {
      if (target.workload() == 0) {
        return invalid("stage1.workload: name a held workload (StartWorkload with hold)");
      }
      hvmm::v1::IpaRange range;  // the same arithmetic for a virtual range
      range.set_start(target.va());
      range.set_size(target.length());
      auto checked = check_ipa_range("stage1", range, RangeRule::kRequired);
      if (!checked) {
        std::string message = checked.error().message;
        // "stage1: start ..." reads better as the field it is.
        for (auto [from, to] : {std::pair{"stage1: start", "stage1.va:"},
                                std::pair{"stage1: size", "stage1.length:"}}) {
          if (message.rfind(from, 0) == 0) {
            message = to + message.substr(std::string_view(from).size());
          }
        }
        return invalid(message);
      }
      return Ok();
    }
    default:
      return invalid(fmt::format("stage1.scope: {} is not RANGE, ADDRESS_SPACE or KERNEL_ALL",
                                 static_cast<int>(target.scope())));
  }
}

}  // namespace

VmFacts vm_facts(const std::string& name, const hvmm::v1::VmSpec& spec) {
  VmFacts facts;
  facts.name = name;
  facts.memory_bytes = spec.memory_bytes() != 0 ? spec.memory_bytes() : uint64_t{128} << 20;
  facts.balloon = !spec.balloon().disabled();
  facts.control_channel = !spec.has_control_channel() || spec.control_channel();
  facts.reclaim = spec.has_reclaim_policy();
  return facts;
}

Result<void> check_ipa_range(std::string_view field, const hvmm::v1::IpaRange& range,
                             RangeRule rule) {
  if (range.size() == 0) {
    if (rule == RangeRule::kRequired) {
      return invalid(fmt::format("{}: size 0 (an empty range)", field));
    }
    if (range.start() != 0) {
      return invalid(fmt::format(
          "{}: size 0 with start {:#x} (leave both unset for all of it, or give a size)", field,
          range.start()));
    }
    return Ok();
  }
  if (range.start() % kPageSize != 0) {
    return invalid(fmt::format("{}: start {:#x} is not a multiple of 4 KiB", field, range.start()));
  }
  if (range.size() % kPageSize != 0) {
    return invalid(fmt::format("{}: size {:#x} is not a multiple of 4 KiB", field, range.size()));
  }
  if (range.start() + range.size() < range.start()) {
    return invalid(
        fmt::format("{}: [{:#x}, +{:#x}) overflows 64 bits", field, range.start(), range.size()));
  }
  return Ok();
}

Result<void> check_stream_buffer(std::string_view field, uint32_t buffer) {
  if (buffer != 0 && (buffer < kMinStreamBuffer || buffer > kMaxStreamBuffer)) {
    return invalid(fmt::format("{}: {} is outside {}..{} (0: {})", field, buffer, kMinStreamBuffer,
                               kMaxStreamBuffer, kDefaultStreamBuffer));
  }
  return Ok();
}

uint32_t stream_buffer(uint32_t buffer) {
  return buffer == 0 ? kDefaultStreamBuffer : buffer;
}

Result<void> check_request(const hvmm::v1::SetBalloonTargetRequest& request, const VmFacts& vm) {
  HVMM_TRY(check_target(request.target_bytes(), vm));
  HVMM_TRY(check_wait("wait_ms", request.wait_ms()));
  return needs_balloon("target_bytes", vm);
}

Result<void> check_request(const hvmm::v1::WatchBalloonRequest& request, const VmFacts& vm) {
  if (request.has_target_bytes()) {
    HVMM_TRY(check_target(request.target_bytes(), vm));
  }
  HVMM_TRY(check_wait("deadline_ms", request.deadline_ms()));
  if (request.interval_ms() != 0 && (request.interval_ms() < 10 || request.interval_ms() > 60000)) {
    return invalid(
        fmt::format("interval_ms: {} is outside 10..60000 (0: 100)", request.interval_ms()));
  }
  return needs_balloon("name", vm);
}

Result<void> check_request(const hvmm::v1::ReclaimRequest& request, const VmFacts& vm) {
  switch (request.action_case()) {
    case hvmm::v1::ReclaimRequest::kEpochs:
      if (request.epochs() < 1 || request.epochs() > 100) {
        return invalid(fmt::format("epochs: {} is outside 1..100", request.epochs()));
      }
      break;
    case hvmm::v1::ReclaimRequest::kSetPolicy: {
      if (request.set_policy().size() > kMaxPolicyLength) {
        return invalid(fmt::format("set_policy: {} bytes long, at most {} are accepted",
                                   request.set_policy().size(), kMaxPolicyLength));
      }
      auto policy = vmm::parse_reclaim_policy(request.set_policy());
      if (!policy) {
        return invalid("set_policy: " + policy.error().message);
      }
      break;
    }
    default:
      return invalid("action: set either epochs or set_policy");
  }
  if (!vm.reclaim) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "action: VM '{}' was created without reclaim (spec.reclaim_policy unset)",
                      vm.name);
  }
  return Ok();
}

Result<void> check_request(const hvmm::v1::DumpStage2Request& request, const VmFacts&) {
  HVMM_TRY(check_ipa_range("range", request.range(), RangeRule::kOptional));
  if (request.page_size() > kMaxDumpPageSize) {
    return invalid(
        fmt::format("page_size: {} is above {} (0: 1000)", request.page_size(), kMaxDumpPageSize));
  }
  if (request.page_token().size() > kMaxPageTokenLength) {
    return invalid(fmt::format("page_token: {} bytes long: not a token this daemon gave out",
                               request.page_token().size()));
  }
  return Ok();
}

Result<void> check_request(const hvmm::v1::GetDirtyLogRequest& request, const VmFacts&) {
  return check_ipa_range("range", request.range(), RangeRule::kOptional);
}

Result<void> check_request(const hvmm::v1::TlbShootdownRequest& request, const VmFacts& vm) {
  switch (request.stage()) {
    case hvmm::v1::TLB_STAGE_2:
      return check_ipa_range("range", request.range(), RangeRule::kOptional);
    case hvmm::v1::TLB_STAGE_1:
      HVMM_TRY(check_stage1(request.stage1()));
      return needs_control_channel("stage", vm);
    default:
      return invalid(fmt::format("stage: {} is neither TLB_STAGE_1 nor TLB_STAGE_2",
                                 static_cast<int>(request.stage())));
  }
}

Result<void> check_request(const hvmm::v1::WatchNotifierRequest& request, const VmFacts&) {
  HVMM_TRY(check_ipa_range("filter", request.filter(), RangeRule::kOptional));
  return check_stream_buffer("buffer", request.buffer());
}

Result<void> check_request(const hvmm::v1::AgeRequest& request, const VmFacts&) {
  return check_ipa_range("range", request.range(), RangeRule::kRequired);
}

Result<void> check_request(const hvmm::v1::InvalidateRequest& request, const VmFacts&) {
  HVMM_TRY(check_ipa_range("range", request.range(), RangeRule::kRequired));
  if (!hvmm::v1::ChangeReason_IsValid(request.reason())) {
    return invalid(
        fmt::format("reason: {} is not a ChangeReason", static_cast<int>(request.reason())));
  }
  return Ok();
}

Result<void> check_request(const hvmm::v1::StartWorkloadRequest& request, const VmFacts& vm) {
  if (request.kind() == hvmm::v1::WORKLOAD_KIND_UNSPECIFIED ||
      !hvmm::v1::WorkloadKind_IsValid(request.kind())) {
    return invalid(
        fmt::format("kind: {} is not a workload kind", static_cast<int>(request.kind())));
  }
  if (request.bytes() == 0 || request.bytes() % kPageSize != 0) {
    return invalid(fmt::format("bytes: {} is not a non-zero multiple of 4 KiB", request.bytes()));
  }
  if (request.bytes() >= vm.memory_bytes) {
    return invalid(
        fmt::format("bytes: {} is not below the RAM size ({})", request.bytes(), ram_of(vm)));
  }
  return needs_control_channel("name", vm);
}

Result<void> check_request(const hvmm::v1::WorkloadRequest& request, const VmFacts& vm) {
  if (request.workload() == 0) {
    return invalid("workload: 0 is no workload (StartWorkload with hold returns one)");
  }
  return needs_control_channel("name", vm);
}

Result<void> check_request(const hvmm::v1::ProbeRequest& request, const VmFacts& vm) {
  if (request.ipa() % 4 != 0 || request.ipa() > UINT64_MAX - 4) {
    return invalid(fmt::format("ipa: {:#x} is not a 4-byte aligned address", request.ipa()));
  }
  return needs_control_channel("name", vm);
}

Result<void> check_request(const hvmm::v1::GetMemoryStatsRequest&, const VmFacts&) {
  return Ok();
}

Result<void> check_request(const hvmm::v1::ListSubscriptionsRequest&, const VmFacts&) {
  return Ok();
}

Result<void> check_watch_faults(const hvmm::v1::WatchFaultsRequest& request) {
  if (!request.name().empty()) {
    HVMM_TRY(check_vm_name_lookup("name", request.name()));
  }
  for (int kind : request.kinds()) {
    if (kind == hvmm::v1::FAULT_KIND_UNSPECIFIED || !hvmm::v1::FaultKind_IsValid(kind)) {
      return invalid(fmt::format("kinds: {} is not a fault kind", kind));
    }
  }
  return check_stream_buffer("buffer", request.buffer());
}

}  // namespace hvmm::daemon
