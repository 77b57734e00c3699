// Reading the kernel and initrd and opening the logs a VmOptions names.
#include "hvmm/daemon/options/vm_files.h"

#include "hvmm/daemon/options/field_names.h"
#include "hvmm/vmm/boot/boot_data.h"
#include "hvmm/vmm/boot/input_file.h"
#include "hvmm/vmm/memory/memory_layout.h"

namespace hvmm::daemon::options_detail {
namespace {

// How kernel errors name the kernel: its quoted path, or the bundled one.
std::string kernel_name(const VmOptions& options) {
  return options.kernel.empty() ? std::string("bundled kernel")
                                : fmt::format("'{}'", options.kernel);
}

// Open one log into `slot` when `path` names one.
Result<void> open_log(const std::string& path, std::string_view field, vmm::LogOpenMode mode,
                      std::optional<vmm::LogFile>& slot) {
  if (path.empty()) {
    return Ok();
  }
  auto log = vmm::open_log_file(path, field, mode);
  HVMM_TRY(log);
  slot = std::move(*log);
  return Ok();
}

}  // namespace

// The bytes first (bounded by RAM), then the ELF's PVH note, then where its segments land.
Result<vmm::PvhKernel> load_kernel(const VmOptions& options, std::span<const uint8_t> bundled,
                                   vmm::MachineConfig& config) {
  if (options.kernel.empty()) {
    config.kernel.assign(bundled.begin(), bundled.end());
  } else {
    auto image = vmm::read_file(options.kernel, field::kKernel, config.memory_size);
    HVMM_TRY(image);
    config.kernel = std::move(*image);
  }
  auto kernel = vmm::parse_pvh_kernel(config.kernel);
  if (!kernel) {
    return make_error(ErrorCode::kInvalidArgument, "{}: {}: {}", field::kKernel,
                      kernel_name(options), kernel.error().message);
  }
  auto placed =
      vmm::check_kernel_placement(*kernel, vmm::ram_layout(config.memory_size), vmm::kBootData);
  if (!placed) {
    return make_error(ErrorCode::kInvalidArgument, "{}: {}: {}", field::kKernel,
                      kernel_name(options), placed.error().message);
  }
  return kernel;
}

// fstat() gives the size, so a file too large for RAM or its slot costs nothing to refuse.
Result<void> load_initrd(const VmOptions& options, const vmm::PvhKernel& kernel,
                         vmm::MachineConfig& config) {
  if (options.initrd.empty()) {
    return Ok();
  }
  auto file = vmm::open_input_file(options.initrd, field::kInitrd);
  HVMM_TRY(file);
  HVMM_TRY(vmm::check_fits_in_ram(*file, config.memory_size));
  auto placed = vmm::place_module(file->size, vmm::ram_layout(config.memory_size), kernel);
  if (!placed) {
    return make_error(ErrorCode::kInvalidArgument, "{}: '{}': {}", field::kInitrd, options.initrd,
                      placed.error().message);
  }
  auto initrd = vmm::read_input_file(*file);
  HVMM_TRY(initrd);
  config.initrd = std::move(*initrd);
  return Ok();
}

// Last of all checks, so an earlier error leaves an existing log untouched.
Result<void> open_logs(const VmOptions& options, vmm::MachineConfig& config) {
  HVMM_TRY(
      open_log(options.fault_log, field::kFaultLog, vmm::LogOpenMode::kAppend, config.fault_log));
  HVMM_TRY(open_log(options.console_log, field::kConsoleLog, vmm::LogOpenMode::kTruncate,
                    config.console_log));
  return open_log(options.stats_file, field::kStatsFile, vmm::LogOpenMode::kTruncate,
                  config.stats_file);
}

}  // namespace hvmm::daemon::options_detail
