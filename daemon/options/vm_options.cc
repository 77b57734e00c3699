// Validation of VmOptions into a MachineConfig: every check a VM's options get, in the order
// a person would fix them, each error starting with the field it is about.
#include "hvmm/daemon/options/vm_options.h"

#include <algorithm>

#include "hvmm/daemon/options/field_names.h"
#include "hvmm/daemon/options/guest_cmdline.h"
#include "hvmm/daemon/options/vm_files.h"
#include "hvmm/vmm/memory/memory_layout.h"

namespace hvmm::daemon {
namespace {

// The longest balloon_stats_interval_seconds: a day.
constexpr uint64_t kMaxStatsIntervalSeconds = 86400;

// 2M..256G in whole pages.
Result<void> check_memory(uint64_t bytes) {
  if (bytes < vmm::kMinMemory || bytes > vmm::kMaxMemory) {
    return make_error(ErrorCode::kInvalidArgument, "{}: must be between 2M and 256G (got {} bytes)",
                      field::kMemory, bytes);
  }
  if (!is_aligned(bytes, kPageSize)) {
    return make_error(ErrorCode::kInvalidArgument, "{}: must be a multiple of 4K (got {} bytes)",
                      field::kMemory, bytes);
  }
  return Ok();
}

// The first balloon field set (each needs the balloon device), or an empty name.
std::string_view first_balloon_field(const VmOptions& options) {
  if (options.balloon_target_bytes != 0) {
    return field::kBalloonTarget;
  }
  if (options.free_page_reporting) {
    return field::kFreePageReporting;
  }
  if (options.balloon_stats_interval_seconds != 0) {
    return field::kBalloonStatsInterval;
  }
  return {};
}

// The balloon's fields against each other and the RAM size, then the stats interval.
Result<void> check_balloon(const VmOptions& options) {
  if (std::string_view name = first_balloon_field(options); !options.balloon && !name.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: needs the balloon device, which this VM is configured without", name);
  }
  if (options.balloon_target_bytes >= options.memory_bytes) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: must be less than the guest's RAM ({} is {} bytes, got {} bytes)",
                      field::kBalloonTarget, field::kMemory, options.memory_bytes,
                      options.balloon_target_bytes);
  }
  if (options.balloon_stats_interval_seconds > kMaxStatsIntervalSeconds) {
    return make_error(ErrorCode::kInvalidArgument, "{}: at most {} seconds, a day (got {})",
                      field::kBalloonStatsInterval, kMaxStatsIntervalSeconds,
                      options.balloon_stats_interval_seconds);
  }
  return Ok();
}

// The devices into config.devices, after the memory size they are checked against.
Result<void> check_devices(const VmOptions& options, vmm::MachineConfig& config) {
  HVMM_TRY(check_balloon(options));
  vmm::DeviceConfig& devices = config.devices;
  devices.balloon = options.balloon;
  devices.control_channel = options.control_channel;
  devices.balloon_target = options.balloon_target_bytes;
  devices.free_page_reporting = options.free_page_reporting;
  devices.balloon_stats_interval = std::chrono::seconds(options.balloon_stats_interval_seconds);
  return Ok();
}

// 0 (one page per fault) or a power of two from 4K to 2M.
Result<void> check_fault_around(uint64_t bytes) {
  const bool power_of_two = (bytes & (bytes - 1)) == 0;
  if (bytes != 0 && (!power_of_two || bytes < kPageSize || bytes > kLargePageSize)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: must be a power of two from 4K to 2M, or 0 for one page per fault "
                      "(got {} bytes)",
                      field::kFaultAround, bytes);
  }
  return Ok();
}

// True when the policy text sets dirty= itself (the parsed policy always has a value).
bool policy_names_dirty(std::string_view policy) {
  while (!policy.empty()) {
    const size_t comma = policy.find(',');
    std::string_view item = policy.substr(0, comma);
    if (item.substr(0, item.find('=')) == "dirty") {
      return true;
    }
    policy = comma == std::string_view::npos ? std::string_view() : policy.substr(comma + 1);
  }
  return false;
}

// The swap file needs a policy; the policy parses and needs userfaultfd (a reclaimed page
// comes back through a MISSING fault); the swap file is opened now, so a FIFO, a device node
// or a file another VM holds is refused with the options.
Result<void> check_reclaim(const VmOptions& options, vmm::MachineConfig& config) {
  if (!options.reclaim_policy) {
    if (!options.reclaim_swap.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "{}: needs {} (the swap file is behind the reclaim pool)",
                        field::kReclaimSwap, field::kReclaimPolicy);
    }
    return Ok();
  }
  auto policy = vmm::parse_reclaim_policy(*options.reclaim_policy);
  if (!policy) {
    return make_error(ErrorCode::kInvalidArgument, "{}: {}", field::kReclaimPolicy,
                      policy.error().message);
  }
  if (!options.userfaultfd) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: needs userfaultfd on (reclaimed pages come back through userfaultfd)",
                      field::kReclaimPolicy);
  }
  config.reclaim = *policy;
  if (!options.reclaim_swap.empty()) {
    auto swap = vmm::SwapFile::open(options.reclaim_swap);
    if (!swap) {
      return make_error(ErrorCode::kInvalidArgument, "{}: {}", field::kReclaimSwap,
                        swap.error().message);
    }
    config.reclaim_swap = std::move(*swap);
  }
  return Ok();
}

// Dirty tracking of its own, or the reclaim policy's: one KVM mechanism per VM, so a policy
// that names the other one is a contradiction; one that names none follows the field.
Result<void> check_dirty_tracking(const VmOptions& options, vmm::MachineConfig& config) {
  if (!options.dirty_tracking) {
    return Ok();
  }
  const vmm::DirtyTracking tracking = *options.dirty_tracking;
  if (config.reclaim && config.reclaim->dirty != tracking) {
    if (policy_names_dirty(*options.reclaim_policy)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "{}: contradicts the dirty={} of {} (a VM has one kind of dirty "
                        "tracking; got {})",
                        field::kDirtyTracking, vmm::dirty_tracking_name(config.reclaim->dirty),
                        field::kReclaimPolicy, vmm::dirty_tracking_name(tracking));
    }
    config.reclaim->dirty = tracking;
  }
  config.dirty_tracking = tracking;
  return Ok();
}

}  // namespace

// Sizes and counts, devices, the command line, faults, reclaim, then the files (read or
// opened last, so an argument error touches no file).
Result<vmm::MachineConfig> make_machine_config(const VmOptions& options,
                                               std::span<const uint8_t> bundled_kernel,
                                               unsigned max_vcpus) {
  vmm::MachineConfig config;
  config.name = options.name;
  HVMM_TRY(check_memory(options.memory_bytes));
  config.memory_size = options.memory_bytes;
  HVMM_TRY(check_vcpu_limit(options.vcpus, max_vcpus));
  config.vcpus = options.vcpus;
  HVMM_TRY(check_devices(options, config));
  HVMM_TRY(check_guest_cmdline(options.cmdline, config.devices));
  config.cmdline = options.cmdline;
  config.console_log_max = options.console_log_max_bytes;
  HVMM_TRY(check_fault_around(options.fault_around_bytes));
  config.faults.fault_around_max = options.fault_around_bytes;
  config.faults.userfaultfd = options.userfaultfd;
  HVMM_TRY(check_reclaim(options, config));
  HVMM_TRY(check_dirty_tracking(options, config));
  auto kernel = options_detail::load_kernel(options, bundled_kernel, config);
  HVMM_TRY(kernel);
  HVMM_TRY(options_detail::load_initrd(options, *kernel, config));
  HVMM_TRY(options_detail::open_logs(options, config));
  return config;
}

// The first two checks of make_machine_config.
Result<void> check_machine_shape(const VmOptions& options) {
  HVMM_TRY(check_memory(options.memory_bytes));
  return check_vcpu_limit(options.vcpus, kMaxVcpus);
}

// 1..min(KVM's limit, hvmm's).
Result<void> check_vcpu_limit(unsigned vcpus, unsigned kvm_max_vcpus) {
  const unsigned limit = std::min(kvm_max_vcpus, kMaxVcpus);
  if (vcpus == 0 || vcpus > limit) {
    const std::string whose = kvm_max_vcpus < kMaxVcpus
                                  ? fmt::format("KVM's limit here is {}", limit)
                                  : fmt::format("hvmm's limit is {}", kMaxVcpus);
    return make_error(ErrorCode::kInvalidArgument, "{}: must be between 1 and {} ({}; got {})",
                      field::kVcpus, limit, whose, vcpus);
  }
  return Ok();
}

}  // namespace hvmm::daemon
