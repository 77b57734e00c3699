// DumpStage2 page tokens (page_token.h): 16 hex digits of the next IPA, 16 of the check.
#include "hvmm/daemon/vmproc/page_token.h"

#include <sys/random.h>

#include <charconv>
#include <chrono>
#include <optional>

namespace hvmm::daemon::vmproc {
namespace {

constexpr size_t kHexDigits = 16;

// splitmix64's finalizer: every input bit reaches every output bit.
uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Exactly 16 lower-case hex digits, or nothing.
std::optional<uint64_t> parse_hex(std::string_view text) {
  if (text.size() != kHexDigits) {
    return std::nullopt;
  }
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return std::nullopt;
    }
  }
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (error != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

// A key the kernel's entropy makes unguessable; the clock if getrandom fails (a token is a
// consistency check, not a secret).
PageTokens PageTokens::with_random_key() {
  uint64_t key = 0;
  if (::getrandom(&key, sizeof(key), 0) != static_cast<ssize_t>(sizeof(key))) {
    key = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  return PageTokens(mix(key));
}

// Chained mixing of key, range and IPA: changing any of them changes the value.
uint64_t PageTokens::check_value(IpaRange dump, Ipa next) const {
  uint64_t h = mix(key_ ^ 0x6876'6d6d'746f'6b6eull);
  h = mix(h ^ dump.start.value());
  h = mix(h ^ dump.size);
  return mix(h ^ next.value());
}

std::string PageTokens::encode(IpaRange dump, Ipa next) const {
  return fmt::format("{:016x}{:016x}", next.value(), check_value(dump, next));
}

Result<Ipa> PageTokens::decode(std::string_view token, IpaRange dump) const {
  auto next =
      token.size() == 2 * kHexDigits ? parse_hex(token.substr(0, kHexDigits)) : std::nullopt;
  auto check = next ? parse_hex(token.substr(kHexDigits)) : std::nullopt;
  if (!next || !check) {
    return make_error(ErrorCode::kInvalidArgument,
                      "page_token: not a token of this VM's DumpStage2 (pass back "
                      "next_page_token unchanged)");
  }
  const Ipa ipa(*next);
  if (*check != check_value(dump, ipa) || !dump.contains(ipa) || !ipa.is_aligned(kPageSize)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "page_token: does not belong to a dump of range {} (the range, or the VM "
                      "process, changed since it was issued)",
                      dump);
  }
  return ipa;
}

}  // namespace hvmm::daemon::vmproc
