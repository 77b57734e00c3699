// Exit statuses of the client commands (`hvmm vm ...`, hvmm-client): how a gRPC status
// becomes the process's status, in one table that the help footer is generated from.
//
// Bad arguments share `hvmm run`'s 120 whether the client found them (a flag, a size) or the
// daemon did (INVALID_ARGUMENT naming the field, an unknown VM, a name taken). The daemon's
// message is printed as it is, after "hvmm: ".
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace hvmm::client {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;              // UNKNOWN, INTERNAL, UNIMPLEMENTED, ...
inline constexpr int kExitFailedPrecondition = 2;  // FAILED_PRECONDITION, ABORTED
inline constexpr int kExitDeadlineExceeded = 3;    // DEADLINE_EXCEEDED (target not reached)
inline constexpr int kExitUnavailable = 4;         // UNAVAILABLE: no daemon at the socket
inline constexpr int kExitPermissionDenied = 5;    // PERMISSION_DENIED, UNAUTHENTICATED
inline constexpr int kExitResourceExhausted = 6;   // RESOURCE_EXHAUSTED (a stream dropped)
inline constexpr int kExitBadArguments = 120;      // INVALID_ARGUMENT, NOT_FOUND, ...
inline constexpr int kExitClientMissing = 127;     // `hvmm` found no hvmm-client to run

// ClientExitStatus is one row of the table: a status and the gRPC codes that give it.
struct ClientExitStatus {
  int status;
  std::string_view codes;
  std::string_view meaning;
};

inline constexpr std::array<ClientExitStatus, 9> kClientExitStatuses = {{
    {kExitOk, "OK", "done"},
    {kExitFailed, "UNKNOWN, INTERNAL, UNIMPLEMENTED, DATA_LOSS, CANCELLED",
     "the daemon (or a VM process) failed the request"},
    {kExitFailedPrecondition, "FAILED_PRECONDITION, ABORTED",
     "the VM's state does not allow it (the message names the state)"},
    {kExitDeadlineExceeded, "DEADLINE_EXCEEDED", "not done in time (a balloon target, --wait)"},
    {kExitUnavailable, "UNAVAILABLE", "no daemon answers at the socket (the message names it)"},
    {kExitPermissionDenied, "PERMISSION_DENIED, UNAUTHENTICATED",
     "the daemon refused this user (root or the socket's group may connect)"},
    {kExitResourceExhausted, "RESOURCE_EXHAUSTED",
     "a limit was reached, e.g. a watch stream dropped for reading too slowly"},
    {kExitBadArguments, "INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, OUT_OF_RANGE",
     "bad arguments, found by the client or the daemon (the message names the field)"},
    {kExitClientMissing, "-", "`hvmm` could not find hvmm-client next to itself"},
}};

// The help footer of the client commands: every row of kClientExitStatuses.
inline std::string client_exit_status_help() {
  std::string text = "Exit status of the client commands:\n";
  for (const ClientExitStatus& row : kClientExitStatuses) {
    std::string status = std::to_string(row.status);
    std::string codes = row.codes == "-" ? std::string() : " [" + std::string(row.codes) + "]";
    text += "  " + status + std::string(5 - status.size(), ' ') + std::string(row.meaning) + codes +
            "\n";
  }
  return text;
}

}  // namespace hvmm::client
