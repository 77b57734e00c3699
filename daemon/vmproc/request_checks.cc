// Range checks and error responses (request_checks.h).
#include "hvmm/daemon/vmproc/request_checks.h"

#include "hvmm/daemon/spec/vm_spec.h"

namespace hvmm::daemon::vmproc {

// The checks in the order a person would fix them: overflow, bounds, alignment.
Result<IpaRange> check_range(const hvmm::v1::IpaRange* range, std::string_view field,
                             IpaRange space, const RangeRules& rules) {
  if (range == nullptr || range->size() == 0) {
    if (rules.if_empty) {
      return *rules.if_empty;
    }
    return make_error(ErrorCode::kInvalidArgument, "{}: must not be empty", field);
  }
  const IpaRange wanted{Ipa(range->start()), range->size()};
  if (wanted.overflows()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: start {:#x} plus size {:#x} overflows 64 bits", field,
                      wanted.start.value(), wanted.size);
  }
  if (wanted.start < space.start || wanted.end() > space.end()) {
    return make_error(ErrorCode::kInvalidArgument, "{}: {} is outside the IPA space {}", field,
                      wanted, space);
  }
  if (rules.page_aligned &&
      (!wanted.start.is_aligned(kPageSize) || !is_aligned(wanted.size, kPageSize))) {
    return make_error(ErrorCode::kInvalidArgument, "{}: {} is not page aligned (4 KiB)", field,
                      wanted);
  }
  return wanted;
}

Error in_field(std::string_view field, Error error) {
  const std::string prefix = std::string(field) + ":";
  if (error.message.compare(0, prefix.size(), prefix) != 0) {
    error.message = fmt::format("{} {}", prefix, error.message);
  }
  return error;
}

void fail(hvmm::supervisor::v1::Response& response, int code, std::string message) {
  response.clear_body();
  response.set_code(code);
  response.set_message(std::move(message));
}

void fail(hvmm::supervisor::v1::Response& response, const Error& error) {
  fail(response, rpc_code(error.code), error.message);
}

}  // namespace hvmm::daemon::vmproc
