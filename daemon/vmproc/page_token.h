// PageTokens: the opaque page_token of a paginated DumpStage2.
//
// A token carries the IPA the next page starts at, bound to the dump's range by a keyed
// check value: a token is accepted only for the range it was made for, by the VM process
// that made it (the key is drawn at start-up), and only when the IPA lies inside that range
// and on a page boundary. Clients must treat tokens as opaque; a forged, stale or corrupted
// one is INVALID_ARGUMENT naming page_token, never a dump of something else.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"

namespace hvmm::daemon::vmproc {

class PageTokens {
 public:
  explicit PageTokens(uint64_t key) : key_(key) {}
  // Tokens with a key from the kernel's random source (getrandom).
  static PageTokens with_random_key();

  // The token for the page of `dump` that starts at `next` (inside `dump`).
  std::string encode(IpaRange dump, Ipa next) const;
  // The IPA `token` names, checked against `dump`.
  Result<Ipa> decode(std::string_view token, IpaRange dump) const;

 private:
  uint64_t check_value(IpaRange dump, Ipa next) const;

  uint64_t key_;
};

}  // namespace hvmm::daemon::vmproc
