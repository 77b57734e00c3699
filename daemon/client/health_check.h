// The standard gRPC health check (grpc.health.v1.Health/Check) through a generic stub, so the
// client needs no generated code for it: the request is the empty message (service ""), the
// response one varint field (status: 1 SERVING, 2 NOT_SERVING, 0 UNKNOWN).
#pragma once

#include <grpcpp/channel.h>

#include <chrono>
#include <memory>
#include <string>

#include "hvmm/base/result.h"

namespace hvmm::client {

inline constexpr int kHealthServing = 1;

// Ask `channel` for the server's overall health within `timeout`: the status number, or an
// error naming the call's gRPC status (kUnavailable) or the unreadable response (kDataLoss).
Result<int> check_health(const std::shared_ptr<grpc::Channel>& channel,
                         std::chrono::milliseconds timeout);

// The name of a grpc.health.v1 serving status ("SERVING", ...; "status N" otherwise).
std::string health_status_name(int status);

}  // namespace hvmm::client
