// The virtio fuzz bodies run by the regular and ASan+UBSan builds: deterministic random
// inputs (fixed seeds) must keep every property virtio_fuzz_check.h lists.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "virtio_fuzz_check.h"

namespace hvmm::vmm::fuzz {
namespace {

// A virtqueue input: a plausible header (small power-of-two or odd sizes, rings inside the
// first 16 KiB) over random memory with descriptors that often point back into it.
std::vector<uint8_t> virtqueue_input(std::mt19937_64& random) {
  std::vector<uint8_t> input(12 + 16384);
  const uint16_t sizes[] = {1, 2, 4, 8, 16, 3, 0, 256, 512};
  const uint16_t header[6] = {sizes[random() % 9],
                              static_cast<uint16_t>(random() % 256),
                              static_cast<uint16_t>(0x1000 + random() % 256),
                              static_cast<uint16_t>(0x800 + random() % 256),
                              static_cast<uint16_t>(random() | 0x100),
                              0};
  std::memcpy(input.data(), header, sizeof(header));
  for (size_t i = 12; i < input.size(); ++i) {
    input[i] = static_cast<uint8_t>(random() % 4 == 0 ? random() : random() % 24);
  }
  return input;
}

// A balloon input: a bring-up, then random operations.
std::vector<uint8_t> balloon_input(std::mt19937_64& random) {
  std::vector<uint8_t> input = {6, static_cast<uint8_t>(random())};
  const size_t n = 64 + random() % 2048;
  for (size_t i = 0; i < n; ++i) {
    input.push_back(static_cast<uint8_t>(random() % 3 == 0 ? random() % 8 : random()));
  }
  return input;
}

// Random virtqueue memory and registers never break the parser's properties.
TEST(VirtioFuzzReplay, VirtqueueKeepsItsProperties) {
  std::mt19937_64 random(20261202);
  for (int i = 0; i < 5000; ++i) {
    const std::string problem = check_virtqueue_input(virtqueue_input(random));
    ASSERT_EQ(problem, "") << "input " << i;
  }
}

// Random balloon traffic never breaks the device's properties.
TEST(VirtioFuzzReplay, BalloonKeepsItsProperties) {
  std::mt19937_64 random(20261203);
  for (int i = 0; i < 2000; ++i) {
    const std::string problem = check_balloon_input(balloon_input(random));
    ASSERT_EQ(problem, "") << "input " << i;
  }
}

// The empty input and short inputs are fine too.
TEST(VirtioFuzzReplay, ShortInputs) {
  EXPECT_EQ(check_virtqueue_input({}), "");
  EXPECT_EQ(check_balloon_input({}), "");
  const uint8_t one[] = {6};
  EXPECT_EQ(check_balloon_input(one), "");
}

}  // namespace
}  // namespace hvmm::vmm::fuzz
