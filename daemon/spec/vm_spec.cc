// VmSpec -> VmOptions (vm_spec.h).
#include "hvmm/daemon/spec/vm_spec.h"

namespace hvmm::daemon {

Result<VmOptions> options_from_spec(const std::string& name, const hvmm::v1::VmSpec& spec) {
  VmOptions options;
  options.name = name;
  options.kernel = spec.kernel();
  options.initrd = spec.initrd();
  options.cmdline = spec.cmdline();
  if (spec.memory_bytes() != 0) {
    options.memory_bytes = spec.memory_bytes();
  }
  if (spec.vcpus() != 0) {
    options.vcpus = spec.vcpus();
  }
  const auto& balloon = spec.balloon();
  options.balloon = !balloon.disabled();
  options.balloon_target_bytes = balloon.initial_target_bytes();
  options.free_page_reporting = balloon.free_page_reporting();
  options.balloon_stats_interval_seconds = balloon.stats_interval_seconds();
  if (spec.has_reclaim_policy()) {
    options.reclaim_policy = spec.reclaim_policy();
  }
  options.reclaim_swap = spec.reclaim_swap();
  if (spec.has_fault_around_bytes()) {
    options.fault_around_bytes = spec.fault_around_bytes();
  }
  // The daemon drives the guest through the control channel unless told not to.
  options.control_channel = spec.has_control_channel() ? spec.control_channel() : true;
  if (spec.has_console_log_max_bytes()) {
    options.console_log_max_bytes = spec.console_log_max_bytes();
  }
  if (spec.dirty_tracking() == "log") {
    options.dirty_tracking = vmm::DirtyTracking::kLog;
  } else if (spec.dirty_tracking() == "ring") {
    options.dirty_tracking = vmm::DirtyTracking::kRing;
  } else if (!spec.dirty_tracking().empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "spec.dirty_tracking: \"{}\" is neither \"log\" nor \"ring\"",
                      spec.dirty_tracking().substr(0, 64));
  }
  return options;
}

int rpc_code(ErrorCode code) {
  // google.rpc.Code numbers (google/rpc/code.proto), stable by design.
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 3;
    case ErrorCode::kNotFound:
      return 5;
    case ErrorCode::kAlreadyExists:
      return 6;
    case ErrorCode::kPermissionDenied:
      return 7;
    case ErrorCode::kResourceExhausted:
      return 8;
    case ErrorCode::kFailedPrecondition:
      return 9;
    case ErrorCode::kOutOfRange:
      return 11;
    case ErrorCode::kInternal:
      return 13;
    case ErrorCode::kUnavailable:
      return 14;
    case ErrorCode::kDataLoss:
      return 15;
  }
  return 2;  // UNKNOWN
}

}  // namespace hvmm::daemon
