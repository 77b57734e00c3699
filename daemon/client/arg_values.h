// Values of the client commands' flags and arguments, parsed with errors that name them
// ("--memory: 'lots' is not a size ...", "--grace: '5d' has an unknown time unit ...").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "hvmm/base/result.h"
#include "hvmm/daemon/args/range.h"

namespace hvmm::client {

// A size (K/M/G suffixes) for `name`.
Result<uint64_t> size_value(std::string_view name, const std::string& text);

// A duration for `name` in milliseconds, at most UINT32_MAX (what the API carries).
Result<uint32_t> duration_ms_value(std::string_view name, const std::string& text);

// A whole number from 0 to UINT32_MAX for `name`.
Result<uint32_t> count_value(std::string_view name, const std::string& text);

// A decimal number ("0.25", "10") from `low` to `high` for `name`.
Result<double> number_value(std::string_view name, const std::string& text, double low,
                            double high);

// A START:SIZE range for `name`.
Result<args::TypedRange> range_value(std::string_view name, const std::string& text);

// An address (hex with 0x, decimal, or a size such as 1G) for `name`.
Result<uint64_t> address_value(std::string_view name, const std::string& text);

}  // namespace hvmm::client
