// Validation of `hvmm run` arguments into a MachineConfig.
#include "hvmm/vmm/run_options.h"

#include <cctype>
#include <charconv>

#include "hvmm/vmm/boot_data.h"
#include "hvmm/vmm/elf_loader.h"
#include "hvmm/vmm/memory_layout.h"

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

// Read and check the kernel (or take the bundled one) against the RAM layout.
Result<void> check_kernel(const RunOptions& options, std::span<const uint8_t> bundled,
                          MachineConfig& config) {
  if (options.kernel.empty()) {
    config.kernel.assign(bundled.begin(), bundled.end());
  } else {
    auto image = read_file(options.kernel, "--kernel");
    HVMM_TRY(image);
    config.kernel = std::move(*image);
  }
  const std::string name = options.kernel.empty() ? "bundled kernel" : options.kernel;
  auto kernel = parse_pvh_kernel(config.kernel);
  if (kernel) {
    auto placed = check_kernel_placement(*kernel, ram_layout(config.memory_size), kBootData);
    if (!placed) {
      return make_error(ErrorCode::kInvalidArgument, "--kernel {}: {}", name,
                        placed.error().message);
    }
  } else {
    return make_error(ErrorCode::kInvalidArgument, "--kernel {}: {}", name, kernel.error().message);
  }
  if (!options.initrd.empty()) {
    auto initrd = read_file(options.initrd, "--initrd");
    HVMM_TRY(initrd);
    auto placed = place_module(initrd->size(), ram_layout(config.memory_size), *kernel);
    if (!placed) {
      return make_error(ErrorCode::kInvalidArgument, "--initrd {}: {}", options.initrd,
                        placed.error().message);
    }
    config.initrd = std::move(*initrd);
  }
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
  unsigned limit = std::min(max_vcpus, kMaxVcpus);
  if (options.vcpus == 0 || options.vcpus > limit) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--vcpus {}: must be between 1 and {} (KVM allows {}, hvmm {})",
                      options.vcpus, limit, max_vcpus, kMaxVcpus);
  }
  config.vcpus = options.vcpus;
  HVMM_TRY(check_cmdline(options.cmdline));
  config.cmdline = options.cmdline;
  HVMM_TRY(check_kernel(options, bundled_kernel, config));
  config.fault_log = options.fault_log;
  config.console_log = options.console_log;
  return config;
}

}  // namespace hvmm::vmm
