// Sizes and plain numbers from text.
#include "hvmm/daemon/args/size.h"

#include <cctype>
#include <charconv>
#include <string>

namespace hvmm::args {
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

}  // namespace

// Digits, then an optional binary-unit suffix; overflow is an error.
Result<uint64_t> parse_size(std::string_view text) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error == std::errc::result_out_of_range) {
    return make_error(ErrorCode::kOutOfRange, "'{}' is too large", text);
  }
  if (error != std::errc() || end == text.data()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'{}' is not a size (expected a number with an optional K, M or G suffix)",
                      text);
  }
  std::string_view suffix(end, static_cast<size_t>(text.data() + text.size() - end));
  const uint64_t multiplier = suffix_multiplier(suffix);
  if (multiplier == 0) {
    return make_error(ErrorCode::kInvalidArgument, "'{}' has an unknown size suffix '{}'", text,
                      suffix);
  }
  if (value > UINT64_MAX / multiplier) {
    return make_error(ErrorCode::kOutOfRange, "'{}' is too large", text);
  }
  return value * multiplier;
}

// "0x" selects base 16; the whole text must be digits of the base.
Result<uint64_t> parse_number(std::string_view text) {
  int base = 10;
  std::string_view digits = text;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  }
  uint64_t value = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (error == std::errc::result_out_of_range) {
    return make_error(ErrorCode::kOutOfRange, "'{}' is too large", text);
  }
  if (error != std::errc() || end != digits.data() + digits.size() || digits.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'{}' is not a number (expected decimal digits, or hex with 0x)", text);
  }
  return value;
}

}  // namespace hvmm::args
