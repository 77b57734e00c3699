// The seeded page mix: what the guest's mix workload (WorkloadKind::kTouchMix) writes, and
// the corpus the reclaim pool is measured on. Shared by the guest (its ring-3 program follows
// this definition word for word, see guest/kernel/workloads.S), the host tests that check
// the guest's results, and the pool's benchmark.
//
// Page `page` of seed `seed` has the base b = page_base(seed, page) (splitmix64's output
// function, as the other pattern workloads) and one of three kinds, chosen by b mod 8:
//   0, 1, 2: zero page (37.5%)        every word 0
//   3, 4, 5: text-like page (37.5%)   64 lines of 64 bytes, like a log: the first 56 bytes of one
//   of
//                                     eight fixed phrases (chosen by (b >> 3) mod 8), then
//                                     7 hex digits of the line's number (page * 64 + line,
//                                     low 28 bits, most significant digit first) and '\n'
//   6, 7:    random page (25%)        word i = mix(b + (i + 1) * golden): incompressible
// so a page's contents depend only on (seed, page). Words are little-endian 64-bit.
#pragma once

#include <array>
#include <cstdint>

namespace hvmm::pattern {

inline constexpr uint64_t kPageWords = 512;
inline constexpr uint64_t kLineWords = 8;
inline constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;

enum class MixKind : uint8_t { kZero, kText, kRandom };

// splitmix64's output function.
constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The per-page base of every pattern workload.
constexpr uint64_t page_base(uint64_t seed, uint64_t page) {
  return mix64(seed + (page + 1) * kGolden);
}

constexpr MixKind mix_kind(uint64_t base) {
  const uint64_t k = base & 7;
  return k <= 2 ? MixKind::kZero : k <= 5 ? MixKind::kText : MixKind::kRandom;
}

// The eight phrases as 7 little-endian words: the first 56 ASCII bytes of each text (the
// texts run a byte longer; what the guest writes is these words).
inline constexpr std::array<std::array<uint64_t, 7>, 8> kPhrases = [] {
  constexpr const char* text[8] = {
      "INFO  vmm: balloon target reached, guest memory settled ",
      "DEBUG fault: resolved missing page by zero fill in window",
      "WARN  pool: entry kept resident, payload above threshold ",
      "INFO  reclaim: epoch harvested, cold pages moved to pool ",
      "TRACE vcpu: exit io port 0x3f8 write of one byte to uart ",
      "INFO  control: workload verified, checksums match again  ",
      "DEBUG memslot: region installed over the primary mapping ",
      "ERROR virtio: descriptor chain loops, device needs reset ",
  };
  std::array<std::array<uint64_t, 7>, 8> words{};
  for (int p = 0; p < 8; ++p)
    for (int w = 0; w < 7; ++w)
      for (int b = 0; b < 8; ++b)
        words[p][w] |= static_cast<uint64_t>(static_cast<uint8_t>(text[p][w * 8 + b])) << (8 * b);
  return words;
}();

// The last word of a text line: 7 hex digits of (page * 64 + line) & 0xfffffff, then '\n'.
constexpr uint64_t line_tag(uint64_t page, uint64_t line) {
  const uint64_t number = (page * 64 + line) & 0xfffffff;
  uint64_t word = uint64_t{'\n'} << 56;
  for (int d = 0; d < 7; ++d) {
    const uint64_t nibble = (number >> (4 * (6 - d))) & 0xf;
    const uint64_t digit = nibble < 10 ? '0' + nibble : 'a' + nibble - 10;
    word |= digit << (8 * d);
  }
  return word;
}

// Word `i` (0 .. 511) of page `page` of the mix of seed `seed`.
constexpr uint64_t mix_word(uint64_t seed, uint64_t page, uint64_t i) {
  const uint64_t base = page_base(seed, page);
  switch (mix_kind(base)) {
    case MixKind::kZero:
      return 0;
    case MixKind::kText:
      return i % kLineWords == kLineWords - 1 ? line_tag(page, i / kLineWords)
                                              : kPhrases[(base >> 3) & 7][i % kLineWords];
    case MixKind::kRandom:
      break;
  }
  return mix64(base + (i + 1) * kGolden);
}

}  // namespace hvmm::pattern
