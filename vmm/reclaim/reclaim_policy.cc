// The --reclaim syntax: comma-separated key=value pairs into a ReclaimPolicy and back.
#include "hvmm/vmm/reclaim/reclaim_policy.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <vector>

#include <fmt/format.h>

namespace hvmm::vmm {
namespace {

// Every key of the syntax, in the order format_reclaim_policy writes them.
constexpr std::array<std::string_view, 11> kKeys = {
    "target", "period", "cold", "refault", "active", "budget",
    "rate",   "codec",  "pool", "keep",    "dirty",
};

// An error about one key=value pair, in the header's wording.
Error value_error(std::string_view key, std::string_view value, std::string_view what) {
  return make_error(ErrorCode::kInvalidArgument, "reclaim policy: {}={}: {}", key, value, what);
}

// `text` as a whole unsigned decimal number, or nothing.
std::optional<uint64_t> parse_unsigned(std::string_view text) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty())
    return std::nullopt;
  return value;
}

// `text` as a whole finite decimal number (no "inf", "nan" or hex), or nothing.
std::optional<double> parse_decimal(std::string_view text) {
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.')
      return std::nullopt;
  }
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty() ||
      !std::isfinite(value))
    return std::nullopt;
  return value;
}

// A share: "25%" (percent) or "0.25" (a fraction); nothing if neither.
std::optional<double> parse_share(std::string_view text) {
  if (!text.empty() && text.back() == '%') {
    auto percent = parse_decimal(text.substr(0, text.size() - 1));
    if (!percent)
      return std::nullopt;
    return *percent / 100.0;
  }
  return parse_decimal(text);
}

// Bytes: digits with an optional K, M or G suffix (binary units, either case).
Result<uint64_t> parse_bytes(std::string_view key, std::string_view text) {
  uint64_t multiplier = 1;
  std::string_view digits = text;
  if (!text.empty()) {
    switch (std::tolower(static_cast<unsigned char>(text.back()))) {
      case 'k':
        multiplier = uint64_t{1} << 10;
        break;
      case 'm':
        multiplier = uint64_t{1} << 20;
        break;
      case 'g':
        multiplier = uint64_t{1} << 30;
        break;
      default:
        break;
    }
    if (multiplier != 1)
      digits.remove_suffix(1);
  }
  auto value = parse_unsigned(digits);
  if (!value)
    return value_error(key, text, "not a size (expected bytes with an optional K, M or G suffix)");
  if (*value > UINT64_MAX / multiplier)
    return value_error(key, text, "too large");
  return *value * multiplier;
}

// A positive size (rate=, pool=).
Result<uint64_t> parse_positive_bytes(std::string_view key, std::string_view text) {
  auto bytes = parse_bytes(key, text);
  HVMM_TRY(bytes);
  if (*bytes == 0)
    return value_error(key, text, "must be more than 0 bytes");
  return bytes;
}

// A count of epochs, at least 1 (cold=, refault=, active=).
Result<uint32_t> parse_epochs(std::string_view key, std::string_view text) {
  auto value = parse_unsigned(text);
  if (!value || *value > UINT32_MAX)
    return value_error(key, text, "not a number of epochs (expected a whole number)");
  if (*value == 0)
    return value_error(key, text, "must be at least 1 epoch");
  return static_cast<uint32_t>(*value);
}

// A duration with an ms or s suffix, at least 1 ms (period=).
Result<std::chrono::milliseconds> parse_period(std::string_view key, std::string_view text) {
  uint64_t scale = 0;
  std::string_view digits = text;
  if (text.ends_with("ms")) {
    scale = 1;
    digits.remove_suffix(2);
  } else if (text.ends_with("s")) {
    scale = 1000;
    digits.remove_suffix(1);
  }
  auto value = parse_unsigned(digits);
  if (scale == 0 || !value)
    return value_error(key, text, "not a duration (expected a whole number with ms or s)");
  if (*value > UINT32_MAX)
    return value_error(key, text, "too long");
  if (*value == 0)
    return value_error(key, text, "must be at least 1 ms");
  return std::chrono::milliseconds(*value * scale);
}

// target=: bytes, or a share of RAM when it has a '%' or a '.'.
Result<void> parse_target(std::string_view text, ReclaimPolicy& policy) {
  if (text.find_first_of("%.") != std::string_view::npos) {
    auto share = parse_share(text);
    if (!share)
      return value_error("target", text, "not a share of RAM (expected 25% or 0.25)");
    if (*share <= 0 || *share > 1)
      return value_error("target", text, "must be above 0% and at most 100% of RAM");
    policy.target_fraction = share;
    policy.target_bytes.reset();
    return Ok();
  }
  auto bytes = parse_bytes("target", text);
  HVMM_TRY(bytes);
  if (*bytes == 0)
    return value_error("target", text, "must be more than 0 bytes");
  policy.target_bytes = *bytes;
  policy.target_fraction.reset();
  return Ok();
}

// A share in (0, 1] (budget=, keep=).
Result<double> parse_unit_share(std::string_view key, std::string_view text) {
  auto share = parse_share(text);
  if (!share)
    return value_error(key, text, "not a share (expected 75% or 0.75)");
  if (*share <= 0 || *share > 1)
    return value_error(key, text, "must be above 0 and at most 1 (100%)");
  return *share;
}

// Store `value`, checked, in the field `key` names (the key is known).
Result<void> apply_key(std::string_view key, std::string_view value, ReclaimPolicy& policy) {
  if (key == "target")
    return parse_target(value, policy);
  if (key == "period") {
    auto period = parse_period(key, value);
    HVMM_TRY(period);
    policy.period = *period;
  } else if (key == "cold" || key == "refault" || key == "active") {
    auto epochs = parse_epochs(key, value);
    HVMM_TRY(epochs);
    (key == "cold"      ? policy.cold_epochs
     : key == "refault" ? policy.refault_distance
                        : policy.active_epochs) = *epochs;
  } else if (key == "budget" && value == "off") {
    policy.promotion_budget = kNoPromotionBudget;  // never back off
  } else if (key == "budget" || key == "keep") {
    auto share = parse_unit_share(key, value);
    HVMM_TRY(share);
    (key == "budget" ? policy.promotion_budget : policy.keep_threshold) = *share;
  } else if (key == "rate" || key == "pool") {
    auto bytes = parse_positive_bytes(key, value);
    HVMM_TRY(bytes);
    (key == "rate" ? policy.max_rate : policy.pool_limit) = *bytes;
  } else if (key == "codec") {
    auto codec = parse_codec(value);
    if (!codec)
      return value_error(key, value, "unknown codec (expected lz4 or zstd)");
    policy.codec = *codec;
  } else {
    auto dirty = parse_dirty_tracking(value);
    if (!dirty)
      return value_error(key, value, "unknown dirty tracking (expected log or ring)");
    policy.dirty = *dirty;
  }
  return Ok();
}

// The index of `key` in kKeys, or nothing for an unknown key.
std::optional<size_t> key_index(std::string_view key) {
  for (size_t i = 0; i < kKeys.size(); ++i) {
    if (kKeys[i] == key)
      return i;
  }
  return std::nullopt;
}

// Split one "key=value" item and apply it; `seen` catches a repeated key.
Result<void> apply_item(std::string_view item, std::array<bool, kKeys.size()>& seen,
                        ReclaimPolicy& policy) {
  const size_t equals = item.find('=');
  if (item.empty())
    return make_error(ErrorCode::kInvalidArgument,
                      "reclaim policy: empty item (expected key=value pairs separated by ',')");
  if (equals == std::string_view::npos)
    return make_error(ErrorCode::kInvalidArgument,
                      "reclaim policy: '{}': missing '=' (expected "
                      "key=value)",
                      item);
  const std::string_view key = item.substr(0, equals);
  const std::string_view value = item.substr(equals + 1);
  auto index = key_index(key);
  if (!index)
    return make_error(ErrorCode::kInvalidArgument,
                      "reclaim policy: unknown key '{}' (expected one of {})", key,
                      fmt::join(kKeys, ", "));
  if (seen[*index])
    return make_error(ErrorCode::kInvalidArgument, "reclaim policy: {}= given twice", key);
  seen[*index] = true;
  if (value.empty())
    return make_error(ErrorCode::kInvalidArgument, "reclaim policy: {}=: empty value", key);
  return apply_key(key, value, policy);
}

// A share as the shortest percentage that reads back as the same double.
std::string format_share(double share) {
  for (int precision = 1; precision <= 17; ++precision) {
    std::string text = fmt::format("{:.{}g}%", share * 100.0, precision);
    auto back = parse_share(text);
    if (back && *back == share)
      return text;
  }
  return fmt::format("{}", share);
}

// Bytes with the largest binary suffix that divides them exactly.
std::string format_bytes(uint64_t bytes) {
  constexpr std::array<std::pair<int, char>, 3> kUnits = {{{30, 'G'}, {20, 'M'}, {10, 'K'}}};
  for (auto [shift, suffix] : kUnits) {
    if (bytes != 0 && bytes % (uint64_t{1} << shift) == 0)
      return fmt::format("{}{}", bytes >> shift, suffix);
  }
  return fmt::format("{}", bytes);
}

// A period in whole seconds when it is one, else in milliseconds.
std::string format_period(std::chrono::milliseconds period) {
  if (period.count() % 1000 == 0)
    return fmt::format("{}s", period.count() / 1000);
  return fmt::format("{}ms", period.count());
}

}  // namespace

// Items left to right; the empty text is the default policy.
Result<ReclaimPolicy> parse_reclaim_policy(std::string_view text) {
  return parse_reclaim_policy(text, ReclaimPolicy{});
}

// Items left to right over a copy of `base`.
Result<ReclaimPolicy> parse_reclaim_policy(std::string_view text, const ReclaimPolicy& base) {
  ReclaimPolicy policy = base;
  std::array<bool, kKeys.size()> seen{};
  if (text.empty())
    return policy;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string_view item = text.substr(start, comma - start);
    HVMM_TRY(apply_item(item, seen, policy));
    if (comma == std::string_view::npos)
      break;
    start = comma + 1;
  }
  return policy;
}

// The fixed keys in kKeys order, each compared as the syntax would write it.
Result<void> check_policy_change(const ReclaimPolicy& running, const ReclaimPolicy& wanted) {
  auto fixed = [](std::string_view key, std::string_view what, const std::string& want,
                  const std::string& now) -> Result<void> {
    if (want == now)
      return Ok();
    return value_error(key, want,
                       fmt::format("{} is fixed while the VM runs (it is {})", what, now));
  };
  HVMM_TRY(fixed("codec", "the pool's codec", std::string(codec_name(wanted.codec)),
                 std::string(codec_name(running.codec))));
  HVMM_TRY(fixed("pool", "the pool's limit",
                 wanted.pool_limit == 0 ? "RAM/4" : format_bytes(wanted.pool_limit),
                 running.pool_limit == 0 ? "RAM/4" : format_bytes(running.pool_limit)));
  HVMM_TRY(fixed("keep", "the pool's keep threshold", format_share(wanted.keep_threshold),
                 format_share(running.keep_threshold)));
  return fixed("dirty", "the dirty tracking", std::string(dirty_tracking_name(wanted.dirty)),
               std::string(dirty_tracking_name(running.dirty)));
}

// Every key in kKeys order; refault= and active= as their effective values. The two
// defaults that depend on the guest's RAM are left out: target (none: every cold page) and
// pool (a quarter of RAM).
std::string format_reclaim_policy(const ReclaimPolicy& policy) {
  std::vector<std::string> items;
  if (policy.target_bytes)
    items.push_back("target=" + format_bytes(*policy.target_bytes));
  else if (policy.target_fraction)
    items.push_back("target=" + format_share(*policy.target_fraction));
  items.push_back("period=" + format_period(policy.period));
  items.push_back(fmt::format("cold={}", policy.cold_epochs));
  items.push_back(fmt::format("refault={}", policy.effective_refault_distance()));
  items.push_back(fmt::format("active={}", policy.effective_active_epochs()));
  items.push_back(policy.promotion_budget == kNoPromotionBudget
                      ? std::string("budget=off")
                      : "budget=" + format_share(policy.promotion_budget));
  items.push_back("rate=" + format_bytes(policy.max_rate));
  items.push_back(fmt::format("codec={}", codec_name(policy.codec)));
  if (policy.pool_limit != 0)
    items.push_back("pool=" + format_bytes(policy.pool_limit));
  items.push_back("keep=" + format_share(policy.keep_threshold));
  items.push_back(fmt::format("dirty={}", dirty_tracking_name(policy.dirty)));
  return fmt::format("{}", fmt::join(items, ","));
}

}  // namespace hvmm::vmm
