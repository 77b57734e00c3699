// START:SIZE ranges from text.
#include "hvmm/daemon/args/range.h"

#include "hvmm/daemon/args/size.h"

namespace hvmm::args {

// Hex (0x...) is a plain number; anything else is read as a size so "1G" works too.
Result<uint64_t> parse_address(std::string_view text) {
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    return parse_number(text);
  }
  auto size = parse_size(text);
  if (!size) {
    return make_error(size.error().code,
                      "'{}' is not an address (expected a number, hex with 0x, or a size such "
                      "as 1G)",
                      text);
  }
  return *size;
}

// Split at the one colon, then check that the end fits in 64 bits.
Result<TypedRange> parse_range(std::string_view text) {
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'{}' is not a range (expected START:SIZE, e.g. 0x100000:2M)", text);
  }
  auto start = parse_address(text.substr(0, colon));
  if (!start) {
    return make_error(start.error().code, "range '{}': start {}", text, start.error().message);
  }
  auto size = parse_size(text.substr(colon + 1));
  if (!size) {
    return make_error(size.error().code, "range '{}': size {}", text, size.error().message);
  }
  if (*size == 0) {
    return make_error(ErrorCode::kInvalidArgument, "range '{}': the size is 0", text);
  }
  if (*start > UINT64_MAX - *size + 1) {
    return make_error(ErrorCode::kOutOfRange, "range '{}': its end is past 2^64", text);
  }
  return TypedRange{*start, *size};
}

}  // namespace hvmm::args
