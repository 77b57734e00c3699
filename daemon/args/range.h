// Guest-physical ranges as people type them: START:SIZE, START a number (hex with 0x) or a
// size ("1G"), SIZE a size ("0x40000000:2M", "1G:64M"). Alignment and bounds are the
// daemon's to check; only what cannot be a range is refused here.
#pragma once

#include <cstdint>
#include <string_view>

#include "hvmm/base/result.h"

namespace hvmm::args {

// A half-open [start, start + size), size > 0, start + size <= 2^64.
struct TypedRange {
  uint64_t start = 0;
  uint64_t size = 0;
  bool operator==(const TypedRange&) const = default;
};

// Parse `text` as START:SIZE. Errors quote the text and say which part is wrong.
Result<TypedRange> parse_range(std::string_view text);

// Parse an address: a number (hex with 0x) or a size with a suffix ("1G").
Result<uint64_t> parse_address(std::string_view text);

}  // namespace hvmm::args
