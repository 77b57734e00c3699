// Flag values of the client commands.
#include "hvmm/daemon/client/arg_values.h"

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "hvmm/daemon/args/duration.h"
#include "hvmm/daemon/args/size.h"

namespace hvmm::client {
namespace {

// `result`'s value, or its error with `name` in front.
template <typename T>
Result<T> named(std::string_view name, Result<T> result) {
  if (!result) {
    return make_error(result.error().code, "{}: {}", name, result.error().message);
  }
  return result;
}

}  // namespace

Result<uint64_t> size_value(std::string_view name, const std::string& text) {
  return named(name, args::parse_size(text));
}

Result<uint32_t> duration_ms_value(std::string_view name, const std::string& text) {
  auto duration = named(name, args::parse_duration(text));
  HVMM_TRY(duration);
  const auto ms = static_cast<uint64_t>(duration->count());
  if (ms > UINT32_MAX) {
    return make_error(ErrorCode::kOutOfRange, "{}: '{}' is longer than {} ms (about 49 days)", name,
                      text, uint64_t{UINT32_MAX});
  }
  return static_cast<uint32_t>(ms);
}

// strtoull/strtod with the whole text consumed: "12abc", "" and "-1" are errors, not 12 or 0.
Result<uint32_t> count_value(std::string_view name, const std::string& text) {
  if (text.empty() || text.front() < '0' || text.front() > '9') {
    return make_error(ErrorCode::kInvalidArgument, "{}: '{}' is not a whole number", name, text);
  }
  errno = 0;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (*end != '\0') {
    return make_error(ErrorCode::kInvalidArgument, "{}: '{}' is not a whole number", name, text);
  }
  if (errno == ERANGE || value > UINT32_MAX) {
    return make_error(ErrorCode::kOutOfRange, "{}: '{}' is above {}", name, text,
                      uint64_t{UINT32_MAX});
  }
  return static_cast<uint32_t>(value);
}

Result<double> number_value(std::string_view name, const std::string& text, double low,
                            double high) {
  char* end = nullptr;
  const double value = text.empty() ? 0 : std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value)) {
    return make_error(ErrorCode::kInvalidArgument, "{}: '{}' is not a number", name, text);
  }
  if (value < low || value > high) {
    return make_error(ErrorCode::kOutOfRange, "{}: {} is outside {:g}..{:g}", name, text, low,
                      high);
  }
  return value;
}

Result<args::TypedRange> range_value(std::string_view name, const std::string& text) {
  return named(name, args::parse_range(text));
}

Result<uint64_t> address_value(std::string_view name, const std::string& text) {
  return named(name, args::parse_address(text));
}

}  // namespace hvmm::client
