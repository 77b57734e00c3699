// Sizes as people type them: "4096", "64K", "128M", "2G", "1GiB" (binary units,
// case-insensitive, an optional "B" or "iB").
#pragma once

#include <cstdint>
#include <string_view>

#include "hvmm/base/result.h"

namespace hvmm::args {

// Parse `text` as a byte count. Errors quote the text: not a number, an unknown suffix, or a
// value past 2^64 - 1 (OutOfRange).
Result<uint64_t> parse_size(std::string_view text);

// Parse a whole non-negative number: decimal, or hexadecimal with 0x; errors quote the text.
Result<uint64_t> parse_number(std::string_view text);

}  // namespace hvmm::args
