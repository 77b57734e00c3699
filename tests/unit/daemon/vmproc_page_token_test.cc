// DumpStage2 page tokens: they round-trip, and a token of another range, another process
// (key), a changed digit, a wrong length or an IPA off the range or a page boundary is
// refused naming page_token.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "hvmm/daemon/vmproc/page_token.h"

namespace hvmm::daemon::vmproc {
namespace {

constexpr IpaRange kDump{Ipa(0), uint64_t{1} << 32};

// Random page-aligned IPAs inside the dump come back as they went.
TEST(VmprocPageToken, RoundTrips) {
  const PageTokens tokens(0x1234);
  std::mt19937_64 random(1);
  for (int i = 0; i < 1000; ++i) {
    const Ipa next((random() % (kDump.size / kPageSize)) * kPageSize);
    auto decoded = tokens.decode(tokens.encode(kDump, next), kDump);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(*decoded, next);
  }
}

// Every single-character change of a token is refused (none decodes to another IPA).
TEST(VmprocPageToken, AnyChangedCharacterIsRefused) {
  const PageTokens tokens(99);
  const std::string token = tokens.encode(kDump, Ipa(0x40000000));
  for (size_t i = 0; i < token.size(); ++i) {
    for (char c : std::string("0123456789abcdefX")) {
      if (c == token[i]) {
        continue;
      }
      std::string changed = token;
      changed[i] = c;
      auto decoded = tokens.decode(changed, kDump);
      ASSERT_FALSE(decoded.ok()) << changed;
      EXPECT_EQ(decoded.error().code, ErrorCode::kInvalidArgument);
      EXPECT_EQ(decoded.error().message.rfind("page_token:", 0), 0u);
    }
  }
}

// A token belongs to its range and its key.
TEST(VmprocPageToken, BoundToRangeAndKey) {
  const PageTokens tokens(5);
  const std::string token = tokens.encode(kDump, Ipa(0x2000));
  EXPECT_FALSE(tokens.decode(token, IpaRange{Ipa(0), 0x100000}).ok());
  EXPECT_FALSE(tokens.decode(token, IpaRange{Ipa(0x1000), kDump.size - 0x1000}).ok());
  EXPECT_FALSE(PageTokens(6).decode(token, kDump).ok());
  EXPECT_TRUE(tokens.decode(token, kDump).ok());
}

// Lengths other than 32, and IPAs outside the range or off a page, are refused even when
// the check value matches (a token made for a different dump's IPA).
TEST(VmprocPageToken, MalformedOrOutOfRangeIsRefused) {
  const PageTokens tokens(7);
  for (const char* bad : {"", "0", "zz", "00000000000000000000000000000000000"}) {
    EXPECT_FALSE(tokens.decode(bad, kDump).ok()) << bad;
  }
  const IpaRange small{Ipa(0x10000), 0x10000};
  EXPECT_FALSE(tokens.decode(tokens.encode(small, Ipa(0x30000)), small).ok());
  EXPECT_FALSE(tokens.decode(tokens.encode(small, Ipa(0x10800)), small).ok());
  EXPECT_TRUE(tokens.decode(tokens.encode(small, Ipa(0x1f000)), small).ok());
}

// Two processes draw different keys (with overwhelming probability).
TEST(VmprocPageToken, RandomKeysDiffer) {
  const std::string a = PageTokens::with_random_key().encode(kDump, Ipa(0));
  const std::string b = PageTokens::with_random_key().encode(kDump, Ipa(0));
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace hvmm::daemon::vmproc
