// The pool decoder's fuzz body run by the regular and ASan+UBSan builds: deterministic
// random inputs (fixed seeds) in both modes must keep the properties pool_fuzz_check.h lists.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "pool_fuzz_check.h"

namespace hvmm::vmm::fuzz {
namespace {

// A corrupting input: a seed page of either codec and kind, then 1 to 8 byte flips and, one
// time in four, a resize.
std::vector<uint8_t> corrupting_input(std::mt19937_64& random) {
  std::vector<uint8_t> input = {1, static_cast<uint8_t>(random() % 4),
                                static_cast<uint8_t>(random()), static_cast<uint8_t>(random())};
  const size_t flips = 1 + random() % 8;
  for (size_t i = 0; i < flips; ++i) {
    input.push_back(static_cast<uint8_t>(random()));
    input.push_back(static_cast<uint8_t>(random() % 8));
    input.push_back(static_cast<uint8_t>(1 + random() % 255));
  }
  if (random() % 4 == 0) {
    input.push_back(static_cast<uint8_t>(random()));
  }
  return input;
}

// A raw input: a plausible header (codec 0-3, flags mostly 0, a length near the input's)
// over random bytes.
std::vector<uint8_t> raw_input(std::mt19937_64& random) {
  const size_t payload = random() % 600;
  std::vector<uint8_t> input = {0, static_cast<uint8_t>(random() % 4),
                                static_cast<uint8_t>(random() % 8 == 0 ? random() : 0)};
  const size_t length = random() % 4 == 0 ? random() % 0x10000 : payload;
  input.push_back(static_cast<uint8_t>(length));
  input.push_back(static_cast<uint8_t>(length >> 8));
  for (size_t i = 0; i < 8 + payload; ++i) {
    input.push_back(static_cast<uint8_t>(random()));
  }
  return input;
}

// Corrupted valid entries decode to their page or fail with kDataLoss.
TEST(PoolFuzzReplay, CorruptedEntriesAreDataLossOrTheirPage) {
  std::mt19937_64 random(20261210);
  for (int i = 0; i < 4000; ++i) {
    const std::string problem = check_pool_entry_input(corrupting_input(random));
    ASSERT_EQ(problem, "") << "input " << i;
  }
}

// Random bytes behind a plausible header never crash the decoder.
TEST(PoolFuzzReplay, RawEntriesAreDataLossOrChecked) {
  std::mt19937_64 random(20261211);
  for (int i = 0; i < 4000; ++i) {
    const std::string problem = check_pool_entry_input(raw_input(random));
    ASSERT_EQ(problem, "") << "input " << i;
  }
}

// The empty input, short inputs and an uncorrupted seed entry of every kind are fine.
TEST(PoolFuzzReplay, ShortAndCleanInputs) {
  EXPECT_EQ(check_pool_entry_input({}), "");
  const uint8_t raw[] = {0, 1, 0};
  EXPECT_EQ(check_pool_entry_input(raw), "");
  for (uint8_t kind = 0; kind < 4; ++kind) {
    const uint8_t clean[] = {1, kind, 7, 0};
    EXPECT_EQ(check_pool_entry_input(clean), "") << int{kind};
  }
}

}  // namespace
}  // namespace hvmm::vmm::fuzz
