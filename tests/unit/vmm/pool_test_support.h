// Pages and files the reclaim pool's tests share: pattern-mix pages, half-random pages of a
// chosen compressibility, and a temporary directory.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "hvmm/base/address.h"
#include "hvmm/base/pattern_mix.h"

namespace hvmm::vmm::testing {

using Page = std::array<uint8_t, kPageSize>;

// Page `page` of the pattern mix of `seed` (base/include/hvmm/base/pattern_mix.h).
inline Page mix_page(uint64_t seed, uint64_t page) {
  Page out;
  for (uint64_t i = 0; i < pattern::kPageWords; ++i) {
    const uint64_t word = pattern::mix_word(seed, page, i);
    std::memcpy(out.data() + i * 8, &word, 8);
  }
  return out;
}

// A page whose first `random_bytes` bytes are random and the rest a repeated phrase: it
// compresses to a little more than `random_bytes`.
inline Page half_random_page(std::mt19937_64& random, size_t random_bytes) {
  Page out;
  for (size_t i = 0; i < kPageSize; ++i) {
    out[i] =
        i < random_bytes ? static_cast<uint8_t>(random()) : static_cast<uint8_t>("pool "[i % 5]);
  }
  return out;
}

// A page every 64-bit word of which is `word`.
inline Page same_filled_page(uint64_t word) {
  Page out;
  for (size_t i = 0; i < kPageSize; i += 8) {
    std::memcpy(out.data() + i, &word, 8);
  }
  return out;
}

// A fresh directory under the system's temporary directory, removed with its contents.
struct TempDir {
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "hvmm-pool-XXXXXX").string();
    path = ::mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
  std::string path;
};

}  // namespace hvmm::vmm::testing
