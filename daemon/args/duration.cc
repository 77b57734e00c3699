// Durations from text.
#include "hvmm/daemon/args/duration.h"

#include <charconv>
#include <cstdint>

namespace hvmm::args {
namespace {

// Milliseconds per unit, or 0 when the unit is unknown ("" is seconds).
uint64_t unit_milliseconds(std::string_view unit) {
  if (unit == "ms") {
    return 1;
  }
  if (unit.empty() || unit == "s") {
    return 1000;
  }
  if (unit == "m" || unit == "min") {
    return 60'000;
  }
  if (unit == "h") {
    return 3'600'000;
  }
  return 0;
}

}  // namespace

// Digits then a unit; a value past a year is refused rather than overflowing later sums.
Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  constexpr uint64_t kYearMs = uint64_t{365} * 24 * 3'600'000;
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end == text.data()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'{}' is not a duration (expected e.g. 500ms, 10s, 2m)", text);
  }
  std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  const uint64_t per_unit = unit_milliseconds(unit);
  if (per_unit == 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'{}' has an unknown time unit '{}' (expected ms, s, m or h)", text, unit);
  }
  if (value > kYearMs / per_unit) {
    return make_error(ErrorCode::kOutOfRange, "'{}' is longer than a year", text);
  }
  return std::chrono::milliseconds(value * per_unit);
}

}  // namespace hvmm::args
