// Flag values of the client commands.
#include "hvmm/daemon/client/arg_values.h"

#include <cstdint>

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

Result<args::TypedRange> range_value(std::string_view name, const std::string& text) {
  return named(name, args::parse_range(text));
}

Result<uint64_t> address_value(std::string_view name, const std::string& text) {
  return named(name, args::parse_address(text));
}

}  // namespace hvmm::client
