// Validation of `hvmm run` arguments into a MachineConfig.
#include "hvmm/vmm/machine/run_options.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <vector>

#include "hvmm/vmm/boot/boot_data.h"
#include "hvmm/vmm/boot/elf_loader.h"
#include "hvmm/vmm/boot/input_file.h"
#include "hvmm/vmm/devices/virtio/mmio_layout.h"
#include "hvmm/vmm/memory/memory_layout.h"

namespace hvmm::vmm {
namespace {

// The multiplier of a size suffix, or 0 when the suffix is unknown.
uint64_t suffix_multiplier(std::string_view suffix) {
  std::string lower;
  for (char c : suffix) {
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (lower.empty() || lower == "b") {
    return 1;
  }
  const char* units[] = {"k", "m", "g", "t"};
  for (int i = 0; i < 4; ++i) {
    if (lower == units[i] || lower == std::string(units[i]) + "b" ||
        lower == std::string(units[i]) + "ib") {
      return uint64_t{1} << (10 * (i + 1));
    }
  }
  return 0;
}

// Check --memory and return it in bytes.
Result<uint64_t> check_memory(const std::string& text) {
  auto size = parse_size(text);
  if (!size) {
    return make_error(ErrorCode::kInvalidArgument, "--memory: {}", size.error().message);
  }
  if (*size < kMinMemory || *size > kMaxMemory) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--memory {}: must be between 2M and 256G (got {} bytes)", text, *size);
  }
  if (!is_aligned(*size, kPageSize)) {
    return make_error(ErrorCode::kInvalidArgument, "--memory {}: must be a multiple of 4K", text);
  }
  return *size;
}

// The longest --balloon-stats-interval: a day.
constexpr uint64_t kMaxStatsIntervalSeconds = 86400;

// Check --balloon against the RAM size and return it in bytes.
Result<uint64_t> check_balloon_target(const std::string& text, uint64_t memory_size) {
  if (text.empty()) {
    return uint64_t{0};
  }
  auto size = parse_size(text);
  if (!size) {
    return make_error(ErrorCode::kInvalidArgument, "--balloon: {}", size.error().message);
  }
  if (*size >= memory_size) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--balloon {}: must be less than the guest's RAM (--memory is {} bytes, "
                      "got {} bytes)",
                      text, memory_size, *size);
  }
  return *size;
}

// Check --balloon-stats-interval: whole seconds, 0 to a day.
Result<std::chrono::seconds> check_stats_interval(const std::string& text) {
  uint64_t seconds = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--balloon-stats-interval '{}': expected whole seconds (0: only on request)",
                      text);
  }
  if (seconds > kMaxStatsIntervalSeconds) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--balloon-stats-interval {}: at most {} seconds (a day)", text,
                      kMaxStatsIntervalSeconds);
  }
  return std::chrono::seconds(seconds);
}

// The first balloon option given (they need the balloon), or nullptr.
const char* first_balloon_option(const RunOptions& options) {
  if (!options.balloon.empty()) {
    return "--balloon";
  }
  if (options.free_page_reporting) {
    return "--free-page-reporting";
  }
  if (options.balloon_stats_interval != "0") {
    return "--balloon-stats-interval";
  }
  return nullptr;
}

// The balloon and control-channel options into config.devices (after --memory).
Result<void> check_devices(const RunOptions& options, MachineConfig& config) {
  if (const char* option = first_balloon_option(options); options.no_balloon && option) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: needs the balloon, which --no-balloon removes", option);
  }
  DeviceConfig& devices = config.devices;
  devices.balloon = !options.no_balloon;
  devices.control_channel = options.control;
  auto target = check_balloon_target(options.balloon, config.memory_size);
  HVMM_TRY(target);
  devices.balloon_target = *target;
  devices.free_page_reporting = options.free_page_reporting;
  auto interval = check_stats_interval(options.balloon_stats_interval);
  HVMM_TRY(interval);
  devices.balloon_stats_interval = *interval;
  return Ok();
}

// Read (or take the bundled kernel) and parse the kernel, then check its placement.
Result<PvhKernel> check_kernel(const RunOptions& options, std::span<const uint8_t> bundled,
                               MachineConfig& config) {
  if (options.kernel.empty()) {
    config.kernel.assign(bundled.begin(), bundled.end());
  } else {
    auto image = read_file(options.kernel, "--kernel", config.memory_size);
    HVMM_TRY(image);
    config.kernel = std::move(*image);
  }
  const std::string name = options.kernel.empty() ? "bundled kernel" : options.kernel;
  auto kernel = parse_pvh_kernel(config.kernel);
  if (!kernel) {
    return make_error(ErrorCode::kInvalidArgument, "--kernel {}: {}", name, kernel.error().message);
  }
  auto placed = check_kernel_placement(*kernel, ram_layout(config.memory_size), kBootData);
  if (!placed) {
    return make_error(ErrorCode::kInvalidArgument, "--kernel {}: {}", name, placed.error().message);
  }
  return kernel;
}

// Size and place the initrd from fstat() before reading a byte of it.
Result<void> check_initrd(const RunOptions& options, const PvhKernel& kernel,
                          MachineConfig& config) {
  if (options.initrd.empty()) {
    return Ok();
  }
  auto file = open_input_file(options.initrd, "--initrd");
  HVMM_TRY(file);
  HVMM_TRY(check_fits_in_ram(*file, config.memory_size));
  auto placed = place_module(file->size, ram_layout(config.memory_size), kernel);
  if (!placed) {
    return make_error(ErrorCode::kInvalidArgument, "--initrd {}: {}", options.initrd,
                      placed.error().message);
  }
  auto initrd = read_input_file(*file);
  HVMM_TRY(initrd);
  config.initrd = std::move(*initrd);
  return Ok();
}

// Check --console-log-max and return it in bytes (0: no cap).
Result<uint64_t> check_console_log_max(const std::string& text) {
  auto size = parse_size(text);
  if (!size) {
    return make_error(ErrorCode::kInvalidArgument, "--console-log-max: {}", size.error().message);
  }
  return *size;
}

// Open both logs, last, so an earlier argument error leaves an existing log untouched.
Result<void> open_logs(const RunOptions& options, MachineConfig& config) {
  if (!options.fault_log.empty()) {
    auto log = open_log_file(options.fault_log, "--fault-log", LogOpenMode::kAppend);
    HVMM_TRY(log);
    config.fault_log = std::move(*log);
  }
  if (!options.console_log.empty()) {
    auto log = open_log_file(options.console_log, "--console-log", LogOpenMode::kTruncate);
    HVMM_TRY(log);
    config.console_log = std::move(*log);
  }
  return Ok();
}

// Check --fault-around: 0 (one page per fault) or a power of two from 4K to 2M.
Result<uint64_t> check_fault_around(const std::string& text) {
  auto size = parse_size(text);
  if (!size) {
    return make_error(ErrorCode::kInvalidArgument, "--fault-around: {}", size.error().message);
  }
  const bool power_of_two = (*size & (*size - 1)) == 0;
  if (*size != 0 && (!power_of_two || *size < kPageSize || *size > kLargePageSize)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--fault-around {}: must be a power of two from 4K to 2M, or 0 for one page "
                      "per fault (got {} bytes)",
                      text, *size);
  }
  return *size;
}

// Check --userfaultfd: "on" or "off".
Result<bool> check_userfaultfd(const std::string& text) {
  if (text == "on" || text == "off") {
    return text == "on";
  }
  return make_error(ErrorCode::kInvalidArgument, "--userfaultfd {}: must be on or off", text);
}

// Parse --reclaim and check its companions: --reclaim-swap needs it, and it needs
// userfaultfd (a reclaimed page comes back through a MISSING fault). After --userfaultfd.
Result<void> check_reclaim(const RunOptions& options, MachineConfig& config) {
  if (!options.reclaim) {
    if (!options.reclaim_swap.empty()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "--reclaim-swap {}: needs --reclaim (the swap file is behind the reclaim "
                        "pool)",
                        options.reclaim_swap);
    }
    return Ok();
  }
  auto policy = parse_reclaim_policy(*options.reclaim);
  if (!policy) {
    return make_error(ErrorCode::kInvalidArgument, "--reclaim: {}", policy.error().message);
  }
  if (!config.faults.userfaultfd) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--reclaim: needs --userfaultfd on (reclaimed pages come back through "
                      "userfaultfd)");
  }
  config.reclaim = *policy;
  if (!options.reclaim_swap.empty()) {
    // Opened now, so a FIFO, a device node or a file another VM holds is an argument error.
    auto swap = SwapFile::open(options.reclaim_swap);
    if (!swap) {
      return make_error(ErrorCode::kInvalidArgument, "--reclaim-swap: {}", swap.error().message);
    }
    config.reclaim_swap = std::move(*swap);
  }
  return Ok();
}

// Open --stats like the logs (a regular file is truncated), so a bad path is an argument
// error found before /dev/kvm is opened.
Result<void> open_stats_file(const RunOptions& options, MachineConfig& config) {
  if (options.stats.empty()) {
    return Ok();
  }
  auto file = open_log_file(options.stats, "--stats", LogOpenMode::kTruncate);
  HVMM_TRY(file);
  config.stats_file = std::move(*file);
  return Ok();
}

}  // namespace

// Digits, then an optional binary-unit suffix; overflow is an error.
Result<uint64_t> parse_size(std::string_view text) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end == text.data()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'{}' is not a size (expected a number with an optional K, M or G suffix)",
                      text);
  }
  std::string_view suffix(end, static_cast<size_t>(text.data() + text.size() - end));
  uint64_t multiplier = suffix_multiplier(suffix);
  if (multiplier == 0) {
    return make_error(ErrorCode::kInvalidArgument, "'{}' has an unknown size suffix '{}'", text,
                      suffix);
  }
  if (value > UINT64_MAX / multiplier) {
    return make_error(ErrorCode::kOutOfRange, "'{}' is too large", text);
  }
  return value * multiplier;
}

// Check every option in turn and gather the files.
Result<MachineConfig> make_machine_config(const RunOptions& options,
                                          std::span<const uint8_t> bundled_kernel,
                                          unsigned max_vcpus) {
  MachineConfig config;
  auto memory = check_memory(options.memory);
  HVMM_TRY(memory);
  config.memory_size = *memory;
  HVMM_TRY(check_vcpu_limit(options.vcpus, max_vcpus));
  config.vcpus = options.vcpus;
  HVMM_TRY(check_devices(options, config));
  HVMM_TRY(check_guest_cmdline(options.cmdline, config.devices));
  config.cmdline = options.cmdline;
  auto log_max = check_console_log_max(options.console_log_max);
  HVMM_TRY(log_max);
  config.console_log_max = *log_max;
  auto fault_around = check_fault_around(options.fault_around);
  HVMM_TRY(fault_around);
  config.faults.fault_around_max = *fault_around;
  auto userfaultfd = check_userfaultfd(options.userfaultfd);
  HVMM_TRY(userfaultfd);
  config.faults.userfaultfd = *userfaultfd;
  HVMM_TRY(check_reclaim(options, config));
  auto kernel = check_kernel(options, bundled_kernel, config);
  HVMM_TRY(kernel);
  HVMM_TRY(check_initrd(options, *kernel, config));
  HVMM_TRY(open_logs(options, config));
  HVMM_TRY(open_stats_file(options, config));
  return config;
}

// The user's line (length, NUL), then the line the guest gets: the user's plus one
// announcement per virtio device, in the Machine's device order (balloon, control channel).
Result<void> check_guest_cmdline(const std::string& cmdline, const DeviceConfig& devices) {
  HVMM_TRY(check_cmdline(cmdline));
  std::vector<virtio::MmioSlot> slots;
  const unsigned count = (devices.balloon ? 1u : 0u) + (devices.control_channel ? 1u : 0u);
  for (unsigned index = 0; index < count; ++index) {
    auto slot = virtio::mmio_slot(index);
    HVMM_TRY(slot);
    slots.push_back(*slot);
  }
  const std::string guest = virtio::announce_on_cmdline(cmdline, slots);
  if (guest.size() + 1 > kMaxCmdlineBytes) {
    const size_t appended = guest.size() - cmdline.size();
    return make_error(ErrorCode::kInvalidArgument,
                      "--cmdline is {} bytes long; hvmm appends {} bytes announcing its virtio "
                      "devices (virtio_mmio.device=...), so at most {} bytes fit",
                      cmdline.size(), appended, kMaxCmdlineBytes - 1 - appended);
  }
  return Ok();
}

// 1..min(KVM's limit, hvmm's).
Result<void> check_vcpu_limit(unsigned vcpus, unsigned kvm_max_vcpus) {
  unsigned limit = std::min(kvm_max_vcpus, kMaxVcpus);
  if (vcpus == 0 || vcpus > limit) {
    std::string whose = kvm_max_vcpus < kMaxVcpus ? fmt::format("KVM's limit here is {}", limit)
                                                  : fmt::format("hvmm's limit is {}", kMaxVcpus);
    return make_error(ErrorCode::kInvalidArgument, "--vcpus {}: must be between 1 and {} ({})",
                      vcpus, limit, whose);
  }
  return Ok();
}

}  // namespace hvmm::vmm
