// The checks every VM-process request handler shares: ranges against the IPA space, and
// errors as the channel's Response reports them (a google.rpc.Code and a message that starts
// with the request field it is about: "range: [0x1000, 0x1800) is not page aligned").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/supervisor/v1/channel.pb.h"
#include "hvmm/v1/stage2.pb.h"

namespace hvmm::daemon::vmproc {

// google.rpc.Code values no hvmm ErrorCode stands for.
inline constexpr int kRpcOk = 0;
inline constexpr int kRpcDeadlineExceeded = 4;

// What a request's range may be.
struct RangeRules {
  bool page_aligned = true;
  // An unset or empty range means this one; nullopt: an empty range is an error.
  std::optional<IpaRange> if_empty;
};

// The range `range` (nullptr: unset) of the request field `field`, checked: no overflow,
// inside `space` ([0, 2^ipa_bits)), page aligned when the rules say so.
Result<IpaRange> check_range(const hvmm::v1::IpaRange* range, std::string_view field,
                             IpaRange space, const RangeRules& rules);

// `error` with its message prefixed by "field: " (unless it already starts so).
Error in_field(std::string_view field, Error error);

// Make `response` a failure: `code` (google.rpc.Code) and `message`, no body.
void fail(hvmm::supervisor::v1::Response& response, int code, std::string message);
// The same for an hvmm Error, its code mapped by rpc_code().
void fail(hvmm::supervisor::v1::Response& response, const Error& error);

}  // namespace hvmm::daemon::vmproc
