// Result<T>: the value of an operation that can fail in an expected way.
//
// hvmm does not throw across module boundaries for expected failures (a misaligned
// request, a bad guest descriptor, a missing /dev/kvm). Such failures return an Error
// whose message says what was wrong and where, e.g.
//   "cannot map [0x4000, 0x9000): overlaps a live mapping to another output address".
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

#include "hvmm/base/format.h"

namespace hvmm {

// ErrorCode classifies a failure so callers (and gRPC) can map it to a status.
enum class ErrorCode {
  kInvalidArgument,     // the request itself is malformed (alignment, range, value)
  kOutOfRange,          // beyond a configured limit (IPA size, VMID space)
  kAlreadyExists,       // conflicts with existing state
  kNotFound,            // names something that does not exist
  kFailedPrecondition,  // the object is not in a state that permits the request
  kResourceExhausted,   // out of table memory, VMIDs, slots
  kPermissionDenied,    // the OS refused (e.g. /dev/kvm access)
  kUnavailable,         // a required facility is absent (no /dev/kvm, no capability)
  kDataLoss,            // stored data failed its check (a corrupted pool or swap entry)
  kInternal,            // a bug or an unexpected OS failure
};

// Return a short lower-case name for the code, used in messages and logs.
const char* error_code_name(ErrorCode code);

// Error is a code plus a message meant for a person.
struct Error {
  ErrorCode code;
  std::string message;
};

// Make an Error with a fmt-formatted message.
template <typename... Args>
Error make_error(ErrorCode code, fmt::format_string<Args...> format, Args&&... args) {
  return Error{code, fmt::format(format, std::forward<Args>(args)...)};
}

// Result<T> holds either a T or an Error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : state_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(state_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(state_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(state_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(state_);
  }

 private:
  std::variant<T, Error> state_;
};

// Result<void> holds nothing or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT: implicit

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const {
    assert(failed_);
    return error_;
  }

 private:
  Error error_{ErrorCode::kInternal, {}};
  bool failed_ = false;
};

// Ok() is the successful Result<void>.
inline Result<void> Ok() {
  return {};
}

}  // namespace hvmm

// HVMM_TRY(expr): evaluate a Result (a temporary or a named, possibly move-only one, which is
// bound by reference, not copied); on error return its Error from the enclosing function.
#define HVMM_TRY(expr)                                \
  do {                                                \
    auto&& hvmm_try_result_ = (expr);                 \
    if (!hvmm_try_result_.ok()) {                     \
      return ::hvmm::Error(hvmm_try_result_.error()); \
    }                                                 \
  } while (false)
