// IpaSpace derives the stage-2 start level and root concatenation as the ARM ARM does.
#include <gtest/gtest.h>

#include "hvmm/stage2/ipa_space.h"

namespace hvmm::stage2 {
namespace {

struct Geometry {
  unsigned ipa_bits;
  unsigned arm_start_level;
  unsigned root_tables;
  unsigned root_entries;
  unsigned sl0;
};

// Expected values follow ARM ARM D8.2.7 with the fewest levels (as Linux KVM chooses).
constexpr Geometry kGeometries[] = {
    {32, 2, 4, 2048, 0},  {33, 2, 8, 4096, 0}, {34, 2, 16, 8192, 0}, {35, 1, 1, 32, 1},
    {36, 1, 1, 64, 1},    {39, 1, 1, 512, 1},  {40, 1, 2, 1024, 1},  {42, 1, 8, 4096, 1},
    {43, 1, 16, 8192, 1}, {44, 0, 1, 32, 2},   {48, 0, 1, 512, 2},
};

// Every supported IPA size gets the start level, root tables and VTCR fields of the spec.
TEST(IpaSpaceTest, GeometryMatchesArmArm) {
  for (const Geometry& g : kGeometries) {
    SCOPED_TRACE(g.ipa_bits);
    auto space = IpaSpace::create(g.ipa_bits);
    ASSERT_TRUE(space.ok());
    EXPECT_EQ(space->arm_start_level(), g.arm_start_level);
    EXPECT_EQ(space->root_level(), 3 - g.arm_start_level);
    EXPECT_EQ(space->root_tables(), g.root_tables);
    EXPECT_EQ(space->root_entries(), g.root_entries);
    EXPECT_EQ(space->vtcr_sl0(), g.sl0);
    EXPECT_EQ(space->vtcr_t0sz(), 64 - g.ipa_bits);
  }
}

// At most 16 root tables are ever concatenated, and the root covers exactly the IPA space.
TEST(IpaSpaceTest, RootCoversSpaceForAllSizes) {
  for (unsigned bits = IpaSpace::kMinBits; bits <= IpaSpace::kMaxBits; ++bits) {
    auto space = IpaSpace::create(bits);
    ASSERT_TRUE(space.ok());
    EXPECT_LE(space->root_tables(), 16u);
    EXPECT_EQ(uint64_t{space->root_entries()} << (12 + 9 * space->root_level()), space->size());
  }
}

// Sizes outside 32..48 bits are refused with a message naming the size.
TEST(IpaSpaceTest, RejectsUnsupportedSizes) {
  for (unsigned bits : {0u, 31u, 49u, 64u}) {
    auto space = IpaSpace::create(bits);
    ASSERT_FALSE(space.ok());
    EXPECT_EQ(space.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(space.error().message.find(std::to_string(bits) + " bits"), std::string::npos);
  }
}

}  // namespace
}  // namespace hvmm::stage2
