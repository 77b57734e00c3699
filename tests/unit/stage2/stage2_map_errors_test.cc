// Every request Stage2Map rejects changes nothing and names the range and the reason.
#include <gtest/gtest.h>

#include <string>

#include "hvmm/stage2/stage2_map.h"

namespace hvmm::stage2 {
namespace {

constexpr uint64_t kPage = kPageSize;
constexpr uint64_t k2M = kLargePageSize;

class Stage2MapErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto map = Stage2Map::create(IpaSpace::create(36).value(), tables_);
    ASSERT_TRUE(map.ok());
    map_.emplace(std::move(map).value());
    // A 2 MiB block at 0, a pinned page at 4 MiB, nothing else.
    ASSERT_TRUE(map_->map({Ipa(0), k2M}, HostOffset(0), kRamAttributes).ok());
    ASSERT_TRUE(map_->map({Ipa(2 * k2M), kPage}, HostOffset(2 * k2M), kRamAttributes).ok());
    ASSERT_TRUE(
        map_->set_page_state({Ipa(2 * k2M), kPage}, {.set_pinned = true, .pinned = true}).ok());
    before_ = map_->dump();
    tables_before_ = tables_.tables_in_use();
  }

  // The request failed with `code`, its message contains every `fragment`, and the map and
  // its table memory are exactly as before.
  void expect_rejected(const Result<void>& result, ErrorCode code,
                       std::initializer_list<const char*> fragments) {
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, code) << result.error().message;
    for (const char* fragment : fragments) {
      EXPECT_NE(result.error().message.find(fragment), std::string::npos)
          << "'" << result.error().message << "' lacks '" << fragment << "'";
    }
    EXPECT_EQ(map_->dump(), before_);
    EXPECT_EQ(tables_.tables_in_use(), tables_before_);
  }

  HeapTableAllocator tables_;
  std::optional<Stage2Map> map_;
  std::string before_;
  size_t tables_before_ = 0;
};

// A start that is not page aligned.
TEST_F(Stage2MapErrorsTest, MisalignedStart) {
  expect_rejected(map_->map({Ipa(0x80'0800), kPage}, HostOffset(0), kRamAttributes),
                  ErrorCode::kInvalidArgument, {"[0x800800, 0x801800)", "4 KiB"});
}

// A size that is not a multiple of the page size.
TEST_F(Stage2MapErrorsTest, MisalignedSize) {
  expect_rejected(map_->unmap({Ipa(0), 0x1800}), ErrorCode::kInvalidArgument,
                  {"unmap [0x0, 0x1800)", "4 KiB"});
}

// An empty range.
TEST_F(Stage2MapErrorsTest, EmptyRange) {
  expect_rejected(map_->protect({Ipa(0x1000), 0}, Permissions::kReadOnly, true),
                  ErrorCode::kInvalidArgument, {"empty"});
}

// A range whose end wraps around 2^64.
TEST_F(Stage2MapErrorsTest, OverflowingRange) {
  expect_rejected(map_->map({Ipa(0xffff'ffff'ffff'f000), 0x2000}, HostOffset(0), kRamAttributes),
                  ErrorCode::kInvalidArgument, {"overflows", "0xfffffffffffff000"});
}

// A range that runs past the 36-bit IPA space.
TEST_F(Stage2MapErrorsTest, BeyondIpaSpace) {
  expect_rejected(
      map_->map({Ipa((uint64_t{1} << 36) - kPage), 2 * kPage}, HostOffset(0), kRamAttributes),
      ErrorCode::kOutOfRange, {"[0xffffff000, 0x1000001000)", "36-bit"});
}

// Remapping a live page to another output address.
TEST_F(Stage2MapErrorsTest, RemapToAnotherOutput) {
  expect_rejected(map_->map({Ipa(k2M - kPage), 2 * kPage}, HostOffset(0x1000'0000), kRamAttributes),
                  ErrorCode::kAlreadyExists,
                  {"[0x1ff000, 0x201000)", "[0x1ff000, 0x200000) is already mapped to 0x1ff000",
                   "not 0x10000000"});
}

// An output address that is not page aligned, or beyond the 48-bit output space.
TEST_F(Stage2MapErrorsTest, BadOutputAddress) {
  expect_rejected(map_->map({Ipa(0x80'0000), kPage}, HostOffset(0x10), kRamAttributes),
                  ErrorCode::kInvalidArgument, {"0x10", "aligned"});
  expect_rejected(map_->map({Ipa(0x80'0000), 2 * kPage}, HostOffset((uint64_t{1} << 48) - kPage),
                            kRamAttributes),
                  ErrorCode::kInvalidArgument, {"2^48"});
}

// Protecting a range with a hole.
TEST_F(Stage2MapErrorsTest, ProtectHole) {
  expect_rejected(map_->protect({Ipa(0), k2M + kPage}, Permissions::kReadOnly, true),
                  ErrorCode::kFailedPrecondition, {"[0x200000, 0x201000) is not mapped"});
}

// Changing the state of a range with a hole.
TEST_F(Stage2MapErrorsTest, PageStateHole) {
  expect_rejected(map_->set_page_state({Ipa(3 * k2M), kPage},
                                       {.set_write_tracked = true, .write_tracked = true}),
                  ErrorCode::kFailedPrecondition, {"[0x600000, 0x601000) is not mapped"});
}

// Unmapping a pinned page.
TEST_F(Stage2MapErrorsTest, UnmapPinned) {
  expect_rejected(map_->unmap({Ipa(0), 4 * k2M}), ErrorCode::kFailedPrecondition,
                  {"cannot unmap [0x0, 0x800000)", "[0x400000, 0x401000) is pinned"});
}

// Ballooning or reclaiming a pinned page.
TEST_F(Stage2MapErrorsTest, BalloonPinned) {
  expect_rejected(map_->set_page_state({Ipa(2 * k2M), kPage},
                                       {.set_backing = true, .backing = Backing::kBallooned}),
                  ErrorCode::kFailedPrecondition, {"ballooned", "pinned"});
  expect_rejected(map_->set_page_state({Ipa(2 * k2M), kPage},
                                       {.set_backing = true, .backing = Backing::kReclaimed}),
                  ErrorCode::kFailedPrecondition, {"reclaimed", "pinned"});
}

// Running out of table memory halfway is impossible: the request fails before any change.
TEST_F(Stage2MapErrorsTest, OutOfTableMemory) {
  tables_.set_limit(tables_.tables_in_use() + 1);  // the request needs two more tables
  expect_rejected(map_->map({Ipa(0x4000'0000), kPage}, HostOffset(0x4000'0000), kRamAttributes),
                  ErrorCode::kResourceExhausted,
                  {"[0x40000000, 0x40001000)", "out of stage-2 table memory", "2 more"});
  // Splitting a block needs a table too.
  tables_.set_limit(tables_.tables_in_use());
  expect_rejected(map_->protect({Ipa(0), kPage}, Permissions::kReadOnly, true),
                  ErrorCode::kResourceExhausted, {"protect [0x0, 0x1000)"});
}

// A map cannot be created with blocks larger than the granule allows.
TEST(Stage2MapCreateTest, RejectsTooLargeBlocks) {
  HeapTableAllocator tables;
  auto map = Stage2Map::create(IpaSpace::create(40).value(), tables, {.max_block_level = 3});
  ASSERT_FALSE(map.ok());
  EXPECT_NE(map.error().message.find("max_block_level 3"), std::string::npos);
}

}  // namespace
}  // namespace hvmm::stage2
