// Sizes and durations for people.
#include "hvmm/daemon/args/human.h"

#include <fmt/format.h>

namespace hvmm::args {
namespace {

// Three significant digits of `value` (at least 1) followed by `unit`.
std::string three_digits(double value, const char* unit) {
  if (value >= 100) {
    return fmt::format("{:.0f} {}", value, unit);
  }
  if (value >= 10) {
    return fmt::format("{:.1f} {}", value, unit);
  }
  return fmt::format("{:.2f} {}", value, unit);
}

}  // namespace

// Whole bytes below 1 KiB; otherwise the largest unit the value reaches.
std::string human_size(uint64_t bytes) {
  if (bytes < 1024) {
    return fmt::format("{} B", bytes);
  }
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (value >= 1024 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  // 1023.9 KiB rounds to "1024 KiB", which is fine: it is still exact enough to read.
  return three_digits(value, units[unit]);
}

// Whole nanoseconds below 1 us; otherwise us, ms or s.
std::string human_duration_ns(uint64_t nanoseconds) {
  if (nanoseconds < 1000) {
    return fmt::format("{} ns", nanoseconds);
  }
  const double ns = static_cast<double>(nanoseconds);
  if (nanoseconds < 1'000'000) {
    return three_digits(ns / 1e3, "us");
  }
  if (nanoseconds < 1'000'000'000) {
    return three_digits(ns / 1e6, "ms");
  }
  return three_digits(ns / 1e9, "s");
}

}  // namespace hvmm::args
