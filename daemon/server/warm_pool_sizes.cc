// Parsing the `warm-pool` setting (warm_pool_sizes.h).
#include "hvmm/daemon/server/warm_pool_sizes.h"

#include <fmt/format.h>

#include <string>

#include "hvmm/daemon/args/size.h"
#include "hvmm/daemon/options/vm_options.h"

namespace hvmm::daemon {
namespace {

Error bad_entry(std::string_view entry, std::string_view why) {
  return make_error(ErrorCode::kInvalidArgument, "warm-pool: '{}': {}", entry, why);
}

// A whole number in [low, high] for `what` of `entry`.
Result<unsigned> parse_count(std::string_view entry, std::string_view text, const char* what,
                             unsigned low, unsigned high) {
  auto value = args::parse_number(text);
  if (!value || *value < low || *value > high) {
    return bad_entry(entry, fmt::format("{} must be a number between {} and {} (got '{}')", what,
                                        low, high, text));
  }
  return static_cast<unsigned>(*value);
}

// "SIZE[/VCPUS]:COUNT".
Result<WarmPoolSize> parse_entry(std::string_view entry) {
  const size_t colon = entry.rfind(':');
  if (colon == std::string_view::npos) {
    return bad_entry(entry, "expected SIZE[/VCPUS]:COUNT (e.g. 256M:2 or 256M/2:2)");
  }
  std::string_view shape = entry.substr(0, colon);
  WarmPoolSize size;
  auto count = parse_count(entry, entry.substr(colon + 1), "the count", 1, kMaxWarmPoolCount);
  HVMM_TRY(count);
  size.count = *count;
  if (const size_t slash = shape.find('/'); slash != std::string_view::npos) {
    auto vcpus = parse_count(entry, shape.substr(slash + 1), "vcpus", 1, kMaxVcpus);
    HVMM_TRY(vcpus);
    size.vcpus = *vcpus;
    shape = shape.substr(0, slash);
  }
  auto bytes = args::parse_size(shape);
  if (!bytes) {
    return bad_entry(entry, bytes.error().message);
  }
  size.memory_bytes = *bytes;
  VmOptions options;
  options.memory_bytes = size.memory_bytes;
  options.vcpus = size.vcpus;
  if (auto checked = check_machine_shape(options); !checked) {
    return bad_entry(entry, checked.error().message);
  }
  return size;
}

}  // namespace

Result<std::vector<WarmPoolSize>> parse_warm_pool_sizes(std::string_view text) {
  std::vector<WarmPoolSize> sizes;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view entry = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    while (!entry.empty() && entry.front() == ' ') {
      entry.remove_prefix(1);
    }
    while (!entry.empty() && entry.back() == ' ') {
      entry.remove_suffix(1);
    }
    if (entry.empty()) {
      return make_error(ErrorCode::kInvalidArgument, "warm-pool: an entry is empty");
    }
    auto size = parse_entry(entry);
    HVMM_TRY(size);
    for (const WarmPoolSize& other : sizes) {
      if (other.memory_bytes == size->memory_bytes && other.vcpus == size->vcpus) {
        return bad_entry(entry, "this size and vCPU count is listed twice");
      }
    }
    sizes.push_back(*size);
  }
  return sizes;
}

}  // namespace hvmm::daemon
