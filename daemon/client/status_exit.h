// A gRPC status as the client's exit status (exit_codes.h) and its code's name.
#pragma once

#include <grpcpp/support/status.h>

#include <string_view>

namespace hvmm::client {

// The exit status for `code`, per kClientExitStatuses.
int exit_code_for(grpc::StatusCode code);

// "NOT_FOUND", "UNAVAILABLE", ... (google.rpc.Code names).
std::string_view status_code_name(grpc::StatusCode code);

}  // namespace hvmm::client
