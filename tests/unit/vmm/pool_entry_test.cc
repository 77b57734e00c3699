// Tests of the pool's entry format and its decoder (vmm/reclaim/pool/pool_entry.h).
#include "hvmm/vmm/reclaim/pool/pool_entry.h"

#include <gtest/gtest.h>
#include <lz4.h>
#include <zstd.h>

#include <random>
#include <vector>

#include "hvmm/vmm/reclaim/pool/page_codec.h"
#include "pool_test_support.h"

namespace hvmm::vmm {
namespace {

using testing::mix_page;
using testing::Page;

constexpr Codec kCodecs[] = {Codec::kLz4, Codec::kZstd};
constexpr size_t kKeep = kPageSize * 3 / 4;

// The entry of `page` with `codec` in a buffer of `room` bytes (empty: not kept).
std::vector<uint8_t> entry_of(Codec codec, const Page& page, size_t room = kKeep) {
  std::vector<uint8_t> entry(room);
  entry.resize(encode_entry(codec, page, entry));
  return entry;
}

// A pattern-mix page of kind `kind` (the first one of seed 7 from `from` on).
Page mix_page_of_kind(pattern::MixKind kind, uint64_t from = 0) {
  for (uint64_t page = from;; ++page) {
    if (pattern::mix_kind(pattern::page_base(7, page)) == kind) {
      return mix_page(7, page);
    }
  }
}

// Every pattern-mix page goes through either codec unchanged: text pages as entries well
// under the threshold, random pages refused, zero pages found same-filled.
TEST(PoolEntry, PatternMixRoundTripsWithBothCodecs) {
  for (Codec codec : kCodecs) {
    for (uint64_t index = 0; index < 512; ++index) {
      const Page page = mix_page(3, index);
      const pattern::MixKind kind = pattern::mix_kind(pattern::page_base(3, index));
      if (kind == pattern::MixKind::kZero) {
        EXPECT_EQ(same_fill_word(page), 0u) << index;
        continue;
      }
      EXPECT_FALSE(same_fill_word(page).has_value()) << index;
      const std::vector<uint8_t> entry = entry_of(codec, page);
      if (kind == pattern::MixKind::kRandom) {
        EXPECT_TRUE(entry.empty()) << codec_name(codec) << " kept a random page " << index;
        continue;
      }
      ASSERT_FALSE(entry.empty()) << codec_name(codec) << " page " << index;
      EXPECT_LT(entry.size(), kPageSize / 4) << codec_name(codec) << " page " << index;
      Page out{};
      ASSERT_TRUE(decode_entry(entry, out).ok()) << codec_name(codec) << " page " << index;
      EXPECT_EQ(out, page) << codec_name(codec) << " page " << index;
    }
  }
}

// Same-filled detection takes every word into account, and fill_page writes the word back.
TEST(PoolEntry, SameFilledPagesAreFoundAndRefilled) {
  const uint64_t word = 0x0123456789abcdefull;
  Page page = testing::same_filled_page(word);
  EXPECT_EQ(same_fill_word(page), word);
  Page out{};
  fill_page(out, word);
  EXPECT_EQ(out, page);
  page[kPageSize - 1] ^= 1;
  EXPECT_FALSE(same_fill_word(page).has_value());
  page = testing::same_filled_page(0);
  page[0] = 1;
  EXPECT_FALSE(same_fill_word(page).has_value());
}

// An entry is never larger than its room: below the entry's length the encoder gives up,
// with a scratch buffer it always succeeds (even on a random page), and it is deterministic.
TEST(PoolEntry, EntryNeverExceedsItsRoom) {
  std::mt19937_64 random(5);
  const Page page = testing::half_random_page(random, 1000);
  const Page noise = testing::half_random_page(random, kPageSize);
  for (Codec codec : kCodecs) {
    const std::vector<uint8_t> entry = entry_of(codec, page, kEntryScratchSize);
    ASSERT_GT(entry.size(), 1000u);
    EXPECT_TRUE(entry_of(codec, page, entry.size() - 1).empty()) << codec_name(codec);
    EXPECT_EQ(entry_of(codec, page, entry.size() + 64), entry) << codec_name(codec);
    EXPECT_GT(entry_of(codec, noise, kEntryScratchSize).size(), kPageSize) << codec_name(codec);
  }
}

// The message of decoding `entry`, which must fail with kDataLoss.
std::string decode_failure(const std::vector<uint8_t>& entry) {
  Page out{};
  auto decoded = decode_entry(entry, out);
  EXPECT_FALSE(decoded.ok());
  if (decoded.ok()) {
    return "";
  }
  EXPECT_EQ(decoded.error().code, ErrorCode::kDataLoss);
  return decoded.error().message;
}

// Each kind of malformed entry is kDataLoss with a message saying what was wrong.
TEST(PoolEntry, MalformedEntriesNameTheirFault) {
  const Page page = mix_page_of_kind(pattern::MixKind::kText);
  for (Codec codec : kCodecs) {
    const std::vector<uint8_t> good = entry_of(codec, page);
    ASSERT_FALSE(good.empty());
    EXPECT_NE(
        decode_failure({good.begin(), good.begin() + 5}).find("shorter than its 12-byte header"),
        std::string::npos);
    std::vector<uint8_t> bad = good;
    bad[0] = 9;
    EXPECT_NE(decode_failure(bad).find("unknown codec 9"), std::string::npos);
    bad = good;
    bad[1] = 0x80;
    EXPECT_NE(decode_failure(bad).find("unknown format flags"), std::string::npos);
    bad = good;
    bad.pop_back();
    EXPECT_NE(decode_failure(bad).find("goes beyond"), std::string::npos);
    bad = good;
    bad.push_back(0);
    EXPECT_NE(decode_failure(bad).find("falls short of"), std::string::npos);
    bad = good;
    bad[4] ^= 1;
    EXPECT_NE(decode_failure(bad).find("fails its checksum"), std::string::npos);
  }
}

// A payload that decodes cleanly to fewer than 4096 bytes is refused for its size.
TEST(PoolEntry, PayloadOfAnotherSizeIsRefused) {
  const Page page = mix_page_of_kind(pattern::MixKind::kText);
  for (Codec codec : kCodecs) {
    // The raw codec's payload of the page's first half, behind a header of the whole page.
    std::vector<uint8_t> payload(kPageSize);
    size_t n = 0;
    if (codec == Codec::kLz4) {
      n = static_cast<size_t>(LZ4_compress_default(reinterpret_cast<const char*>(page.data()),
                                                   reinterpret_cast<char*>(payload.data()), 2048,
                                                   static_cast<int>(payload.size())));
    } else {
      n = ZSTD_compress(payload.data(), payload.size(), page.data(), 2048, kZstdLevel);
    }
    ASSERT_GT(n, 0u);
    std::vector<uint8_t> entry = entry_of(codec, page);
    entry.resize(kEntryHeaderSize);
    entry[2] = static_cast<uint8_t>(n);
    entry[3] = static_cast<uint8_t>(n >> 8);
    entry.insert(entry.end(), payload.begin(), payload.begin() + static_cast<ptrdiff_t>(n));
    EXPECT_NE(decode_failure(entry).find("decompressed to 2048 bytes, not 4096"), std::string::npos)
        << codec_name(codec);
  }
}

// Flipping any bit pattern at any byte of a valid entry never crashes the decoder: it fails
// with kDataLoss, or (only when the checksum still matches) yields the original page.
TEST(PoolEntry, CorruptionAtEveryByteIsDataLossOrTheRightPage) {
  std::mt19937_64 random(11);
  const Page pages[] = {mix_page_of_kind(pattern::MixKind::kText),
                        testing::half_random_page(random, 700)};
  for (Codec codec : kCodecs) {
    for (const Page& page : pages) {
      const std::vector<uint8_t> good = entry_of(codec, page);
      ASSERT_FALSE(good.empty());
      uint64_t rejected = 0;
      for (size_t at = 0; at < good.size(); ++at) {
        for (uint8_t flip : {0x01, 0x80, 0xff, 0x5a}) {
          std::vector<uint8_t> bad = good;
          bad[at] ^= flip;
          Page out{};
          auto decoded = decode_entry(bad, out);
          if (decoded.ok()) {
            EXPECT_EQ(out, page) << codec_name(codec) << " byte " << at << " flip " << int{flip};
          } else {
            EXPECT_EQ(decoded.error().code, ErrorCode::kDataLoss);
            ++rejected;
          }
        }
      }
      // Nearly every corruption is caught (a flip in an unused bit may decode the same page).
      EXPECT_GT(rejected, good.size() * 4 * 9 / 10) << codec_name(codec);
    }
  }
}

// Truncating a valid entry at every length is refused, never read past.
TEST(PoolEntry, TruncationAtEveryLengthIsDataLoss) {
  const Page page = mix_page_of_kind(pattern::MixKind::kText);
  for (Codec codec : kCodecs) {
    const std::vector<uint8_t> good = entry_of(codec, page);
    for (size_t length = 0; length < good.size(); ++length) {
      // A copy of exactly `length` bytes, so ASan sees any read beyond it.
      const std::vector<uint8_t> cut(good.begin(), good.begin() + static_cast<ptrdiff_t>(length));
      Page out{};
      auto decoded = decode_entry(cut, out);
      ASSERT_FALSE(decoded.ok()) << codec_name(codec) << " length " << length;
      EXPECT_EQ(decoded.error().code, ErrorCode::kDataLoss);
    }
  }
}

}  // namespace
}  // namespace hvmm::vmm
