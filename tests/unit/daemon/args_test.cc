// Tests of what people type (sizes, numbers, ranges, durations) and what they read (human
// sizes and durations), with a randomized round trip against a simple model.
#include <gtest/gtest.h>

#include <random>

#include "hvmm/daemon/args/duration.h"
#include "hvmm/daemon/args/human.h"
#include "hvmm/daemon/args/range.h"
#include "hvmm/daemon/args/size.h"

namespace hvmm::args {
namespace {

// Sizes accept plain bytes and binary K/M/G suffixes in either case.
TEST(ParseSize, ParsesSizes) {
  EXPECT_EQ(*parse_size("4096"), 4096u);
  EXPECT_EQ(*parse_size("64K"), 64u << 10);
  EXPECT_EQ(*parse_size("128M"), 128u << 20);
  EXPECT_EQ(*parse_size("128m"), 128u << 20);
  EXPECT_EQ(*parse_size("2G"), uint64_t{2} << 30);
  EXPECT_EQ(*parse_size("1GiB"), uint64_t{1} << 30);
  EXPECT_EQ(*parse_size("3T"), uint64_t{3} << 40);
  EXPECT_EQ(*parse_size("5b"), 5u);
}

// Garbage, unknown suffixes and overflow are errors that quote the text.
TEST(ParseSize, RejectsBadSizes) {
  EXPECT_NE(parse_size("").error().message.find("is not a size"), std::string::npos);
  EXPECT_NE(parse_size("M").error().message.find("is not a size"), std::string::npos);
  EXPECT_NE(parse_size("12X").error().message.find("unknown size suffix 'X'"), std::string::npos);
  EXPECT_NE(parse_size("-5M").error().message.find("is not a size"), std::string::npos);
  EXPECT_NE(parse_size("99999999999999G").error().message.find("too large"), std::string::npos);
  EXPECT_EQ(parse_size("99999999999999999999").error().code, ErrorCode::kOutOfRange);
  EXPECT_EQ(parse_size("1.5G").error().message, "'1.5G' has an unknown size suffix '.5G'");
}

// Random values with random suffixes parse back to value * unit, or are refused when the
// product overflows (model: the value against the largest that the shift keeps).
TEST(ParseSize, RandomRoundTrip) {
  std::mt19937_64 random(20240611);
  const char* suffixes[] = {"", "K", "M", "G", "T", "k", "mib", "GB"};
  const unsigned shifts[] = {0, 10, 20, 30, 40, 10, 20, 30};
  for (int i = 0; i < 2000; ++i) {
    const uint64_t value = random() >> (random() % 64);
    const unsigned which = static_cast<unsigned>(random() % 8);
    const std::string text = std::to_string(value) + suffixes[which];
    const bool overflows = value > (UINT64_MAX >> shifts[which]);
    auto parsed = parse_size(text);
    if (overflows) {
      ASSERT_FALSE(parsed.ok()) << text;
      EXPECT_EQ(parsed.error().code, ErrorCode::kOutOfRange) << text;
    } else {
      ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.error().message;
      EXPECT_EQ(*parsed, value << shifts[which]) << text;
    }
  }
}

// Numbers are decimal or 0x hex, nothing else.
TEST(ParseNumber, DecimalAndHex) {
  EXPECT_EQ(*parse_number("0"), 0u);
  EXPECT_EQ(*parse_number("4096"), 4096u);
  EXPECT_EQ(*parse_number("0x1000"), 4096u);
  EXPECT_EQ(*parse_number("0XfF"), 255u);
  EXPECT_FALSE(parse_number("").ok());
  EXPECT_FALSE(parse_number("0x").ok());
  EXPECT_FALSE(parse_number("12K").ok());
  EXPECT_FALSE(parse_number("-1").ok());
  EXPECT_EQ(parse_number("0x10000000000000000").error().code, ErrorCode::kOutOfRange);
  EXPECT_EQ(parse_number("x").error().message,
            "'x' is not a number (expected decimal digits, or hex with 0x)");
}

// START:SIZE with hex, decimal or suffixed starts.
TEST(ParseRange, ParsesRanges) {
  EXPECT_EQ(*parse_range("0x100000:2M"), (TypedRange{0x100000, 2u << 20}));
  EXPECT_EQ(*parse_range("1G:64M"), (TypedRange{uint64_t{1} << 30, 64u << 20}));
  EXPECT_EQ(*parse_range("4096:4096"), (TypedRange{4096, 4096}));
  EXPECT_EQ(*parse_range("0:1"), (TypedRange{0, 1}));
  EXPECT_EQ(*parse_range("0xfffffffffffff000:4K"), (TypedRange{0xfffffffffffff000, 4096}))
      << "ends exactly at 2^64";
}

// What cannot be a range is refused with the text and the part that is wrong.
TEST(ParseRange, RejectsBadRanges) {
  EXPECT_EQ(parse_range("4096").error().message,
            "'4096' is not a range (expected START:SIZE, e.g. 0x100000:2M)");
  EXPECT_FALSE(parse_range("1:2:3").ok());
  EXPECT_EQ(
      parse_range("zz:4K").error().message.rfind("range 'zz:4K': start 'zz' is not an address", 0),
      0u)
      << parse_range("zz:4K").error().message;
  EXPECT_EQ(parse_range("0x1000:lots").error().message.rfind("range '0x1000:lots': size 'lots'", 0),
            0u);
  EXPECT_EQ(parse_range("0x1000:0").error().message, "range '0x1000:0': the size is 0");
  EXPECT_EQ(parse_range("0xfffffffffffff000:8K").error().code, ErrorCode::kOutOfRange);
  EXPECT_FALSE(parse_range(":4K").ok());
  EXPECT_FALSE(parse_range("4K:").ok());
}

// Durations in ms, s, m, h; a bare number is seconds.
TEST(ParseDuration, ParsesDurations) {
  using std::chrono::milliseconds;
  EXPECT_EQ(*parse_duration("500ms"), milliseconds(500));
  EXPECT_EQ(*parse_duration("10s"), milliseconds(10'000));
  EXPECT_EQ(*parse_duration("10"), milliseconds(10'000));
  EXPECT_EQ(*parse_duration("2m"), milliseconds(120'000));
  EXPECT_EQ(*parse_duration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(*parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(parse_duration("soon").error().message,
            "'soon' is not a duration (expected e.g. 500ms, 10s, 2m)");
  EXPECT_EQ(parse_duration("5d").error().message,
            "'5d' has an unknown time unit 'd' (expected ms, s, m or h)");
  EXPECT_FALSE(parse_duration("-1s").ok());
  EXPECT_FALSE(parse_duration("1.5s").ok());
  EXPECT_EQ(parse_duration("9999h").error().code, ErrorCode::kOutOfRange);
}

// Human sizes keep three significant digits in the largest unit reached.
TEST(Human, Sizes) {
  EXPECT_EQ(human_size(0), "0 B");
  EXPECT_EQ(human_size(1023), "1023 B");
  EXPECT_EQ(human_size(1024), "1.00 KiB");
  EXPECT_EQ(human_size(1536), "1.50 KiB");
  EXPECT_EQ(human_size(128u << 20), "128 MiB");
  EXPECT_EQ(human_size(uint64_t{3} << 29), "1.50 GiB");
  EXPECT_EQ(human_size(uint64_t{20} << 40), "20.0 TiB");
  EXPECT_EQ(human_size(UINT64_MAX), "16.0 EiB");
}

// Human durations in ns, us, ms or s.
TEST(Human, Durations) {
  EXPECT_EQ(human_duration_ns(0), "0 ns");
  EXPECT_EQ(human_duration_ns(999), "999 ns");
  EXPECT_EQ(human_duration_ns(45'000), "45.0 us");
  EXPECT_EQ(human_duration_ns(1'230'000), "1.23 ms");
  EXPECT_EQ(human_duration_ns(2'000'000'000), "2.00 s");
  EXPECT_EQ(human_duration_ns(150'000'000'000), "150 s");
}

}  // namespace
}  // namespace hvmm::args
