// The standard gRPC health check (grpc.health.v1.Health/Check) through a generic stub, so the
// tests need no generated code for it: the request is the empty message (service ""), the
// response one varint field (status: 1 SERVING, 2 NOT_SERVING).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>

#include "hvmm/base/result.h"

namespace hvmm::e2e {

inline constexpr int kHealthServing = 1;

// Ask `channel` for the server's overall health; the status number, or the call's error.
Result<int> check_health(const std::shared_ptr<grpc::Channel>& channel,
                         std::chrono::milliseconds timeout);

}  // namespace hvmm::e2e
