// The pool decoder's fuzz body: raw entries and corrupted valid entries.
#include "pool_fuzz_check.h"

#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include "hvmm/base/pattern_mix.h"
#include "hvmm/vmm/reclaim/pool/pool_entry.h"

namespace hvmm::vmm::fuzz {
namespace {

using Page = std::array<uint8_t, kPageSize>;

// Seed page `index` of `kind` (0: a text page of the pattern mix, 1: a page whose first
// 16 * (index mod 192) bytes are pseudo-random and the rest zero).
Page seed_page(unsigned kind, uint16_t index) {
  Page page{};
  if (kind == 0) {
    uint64_t n = index;
    while (pattern::mix_kind(pattern::page_base(1, n)) != pattern::MixKind::kText) {
      ++n;
    }
    for (uint64_t i = 0; i < pattern::kPageWords; ++i) {
      const uint64_t word = pattern::mix_word(1, n, i);
      std::memcpy(page.data() + i * 8, &word, 8);
    }
    return page;
  }
  const size_t random_bytes = 16 * (index % 192u);
  for (size_t i = 0; i < random_bytes; i += 8) {
    const uint64_t word = pattern::mix64(index * 4096 + i);
    std::memcpy(page.data() + i, &word, 8);
  }
  return page;
}

// Decode `entry` from an exact-size heap copy; "" when the outcome is allowed: kDataLoss, or
// success with the page `expected` (when given) or a page matching the entry's checksum.
std::string decode_checked(const std::vector<uint8_t>& entry, const Page* expected) {
  const std::unique_ptr<uint8_t[]> copy = std::make_unique<uint8_t[]>(entry.size() + 1);
  std::memcpy(copy.get(), entry.data(), entry.size());
  const std::unique_ptr<Page> out = std::make_unique<Page>();
  auto decoded = decode_entry({copy.get(), entry.size()}, *out);
  if (!decoded.ok()) {
    return decoded.error().code == ErrorCode::kDataLoss
               ? ""
               : "decode failed with another code than kDataLoss: " + decoded.error().message;
  }
  if (expected != nullptr && *out != *expected) {
    return "a corrupted entry decoded to another page";
  }
  uint64_t named = 0;
  std::memcpy(&named, entry.data() + 4, sizeof(named));
  return page_checksum(*out) == named ? "" : "an entry decoded to a page failing its checksum";
}

// The corrupting mode: a valid entry of a seed page, corrupted as the input says.
std::string check_corrupted(std::span<const uint8_t> input) {
  if (input.size() < 3) {
    return "";
  }
  const Codec codec = (input[0] & 1) != 0 ? Codec::kZstd : Codec::kLz4;
  const Page page = seed_page((input[0] >> 1) & 1, static_cast<uint16_t>(input[1] | input[2] << 8));
  std::vector<uint8_t> entry(kEntryScratchSize);
  entry.resize(encode_entry(codec, page, entry));
  if (entry.empty()) {
    return "a seed page has no entry";
  }
  if (std::string clean = decode_checked(entry, &page); !clean.empty()) {
    return "the uncorrupted entry: " + clean;
  }
  size_t at = 3;
  for (; at + 3 <= input.size(); at += 3) {
    const size_t position = (input[at] | input[at + 1] << 8) % entry.size();
    entry[position] ^= input[at + 2];
  }
  if (at < input.size()) {
    const uint8_t resize = input[at];
    if ((resize & 0x80) != 0) {
      entry.resize(entry.size() - std::min<size_t>(entry.size(), resize & 0x7f));
    } else {
      entry.resize(entry.size() + resize, resize);
    }
  }
  return decode_checked(entry, &page);
}

}  // namespace

std::string check_pool_entry_input(std::span<const uint8_t> input) {
  if (input.empty()) {
    return "";
  }
  if ((input[0] & 1) == 0) {
    return decode_checked({input.begin() + 1, input.end()}, nullptr);
  }
  return check_corrupted(input.subspan(1));
}

}  // namespace hvmm::vmm::fuzz
