// The VM process's shared request checks: ranges against the IPA space (table-driven, each
// error naming the field), field prefixes, and errors as Responses with google.rpc codes.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "hvmm/daemon/vmproc/request_checks.h"

namespace hvmm::daemon::vmproc {
namespace {

constexpr IpaRange kSpace{Ipa(0), uint64_t{1} << 36};

hvmm::v1::IpaRange proto_range(uint64_t start, uint64_t size) {
  hvmm::v1::IpaRange range;
  range.set_start(start);
  range.set_size(size);
  return range;
}

struct RangeCase {
  const char* what;
  uint64_t start;
  uint64_t size;
  bool aligned;                      // the rule
  std::optional<IpaRange> if_empty;  // the rule
  std::optional<IpaRange> want;      // nullopt: an error
  const char* message_part;          // in the error
};

// Each case: the range accepted as it is, replaced by the default, or refused with a
// message that starts with the field and says why.
TEST(VmprocRequestChecks, RangesTable) {
  const RangeCase cases[] = {
      {"aligned", 0x1000, 0x2000, true, std::nullopt, IpaRange{Ipa(0x1000), 0x2000}, ""},
      {"empty default", 0, 0, true, kSpace, kSpace, ""},
      {"empty refused", 0x1000, 0, true, std::nullopt, std::nullopt, "must not be empty"},
      {"misaligned start", 0x1001, 0x1000, true, std::nullopt, std::nullopt, "not page aligned"},
      {"misaligned size", 0x1000, 0x800, true, std::nullopt, std::nullopt, "not page aligned"},
      {"unaligned allowed", 0x1001, 0x10, false, std::nullopt, IpaRange{Ipa(0x1001), 0x10}, ""},
      {"overflow", UINT64_MAX - 0xfff, 0x2000, true, std::nullopt, std::nullopt, "overflows"},
      {"beyond the space", kSpace.size - 0x1000, 0x2000, true, std::nullopt, std::nullopt,
       "outside the IPA space"},
      {"last page", kSpace.size - 0x1000, 0x1000, true, std::nullopt,
       IpaRange{Ipa(kSpace.size - 0x1000), 0x1000}, ""},
  };
  for (const RangeCase& c : cases) {
    const auto range = proto_range(c.start, c.size);
    auto checked = check_range(&range, "range", kSpace, RangeRules{c.aligned, c.if_empty});
    if (c.want) {
      ASSERT_TRUE(checked.ok()) << c.what << ": " << checked.error().message;
      EXPECT_EQ(*checked, *c.want) << c.what;
    } else {
      ASSERT_FALSE(checked.ok()) << c.what;
      EXPECT_EQ(checked.error().code, ErrorCode::kInvalidArgument) << c.what;
      EXPECT_EQ(checked.error().message.rfind("range: ", 0), 0u) << checked.error().message;
      EXPECT_NE(checked.error().message.find(c.message_part), std::string::npos)
          << c.what << ": " << checked.error().message;
    }
  }
}

// An unset range is the empty one.
TEST(VmprocRequestChecks, UnsetRangeIsEmpty) {
  auto unset = check_range(nullptr, "stage1.range", kSpace, RangeRules{true, std::nullopt});
  ASSERT_FALSE(unset.ok());
  EXPECT_EQ(unset.error().message, "stage1.range: must not be empty");
  auto defaulted = check_range(nullptr, "range", kSpace, RangeRules{true, kSpace});
  ASSERT_TRUE(defaulted.ok());
  EXPECT_EQ(*defaulted, kSpace);
}

// in_field prefixes once.
TEST(VmprocRequestChecks, InFieldPrefixesOnce) {
  const Error plain = make_error(ErrorCode::kInvalidArgument, "too large");
  EXPECT_EQ(in_field("target_bytes", plain).message, "target_bytes: too large");
  EXPECT_EQ(in_field("target_bytes", in_field("target_bytes", plain)).message,
            "target_bytes: too large");
}

// fail() sets the google.rpc code of the ErrorCode and clears the body.
TEST(VmprocRequestChecks, FailMapsCodesAndClearsBody) {
  const std::pair<ErrorCode, int> codes[] = {
      {ErrorCode::kInvalidArgument, 3},    {ErrorCode::kNotFound, 5},
      {ErrorCode::kFailedPrecondition, 9}, {ErrorCode::kResourceExhausted, 8},
      {ErrorCode::kUnavailable, 14},       {ErrorCode::kInternal, 13},
      {ErrorCode::kDataLoss, 15},          {ErrorCode::kPermissionDenied, 7},
  };
  for (const auto& [code, rpc] : codes) {
    hvmm::supervisor::v1::Response response;
    response.mutable_empty();
    fail(response, Error{code, "why"});
    EXPECT_EQ(response.code(), rpc);
    EXPECT_EQ(response.message(), "why");
    EXPECT_EQ(response.body_case(), hvmm::supervisor::v1::Response::BODY_NOT_SET);
  }
  hvmm::supervisor::v1::Response deadline;
  fail(deadline, kRpcDeadlineExceeded, "late");
  EXPECT_EQ(deadline.code(), 4);
}

}  // namespace
}  // namespace hvmm::daemon::vmproc
