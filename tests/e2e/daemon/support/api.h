// Api: stubs of every hvmm.v1 service over one channel, and `call`, which makes one unary call
// with a deadline and returns the status with the response (the tests assert on both).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::e2e {

namespace v1 = ::hvmm::v1;

// A unary call's outcome.
template <typename Response>
struct Reply {
  grpc::Status status;
  Response response;
  bool ok() const { return status.ok(); }
};

// "NOT_FOUND (5): message", for assertion messages.
std::string describe(const grpc::Status& status);

// The name of a gRPC status code ("INVALID_ARGUMENT").
std::string code_name(grpc::StatusCode code);

// A client context whose deadline is `timeout` from now.
std::unique_ptr<grpc::ClientContext> context_for(std::chrono::milliseconds timeout);

// Call `method` of `stub` with `request`, waiting at most `timeout`.
template <typename Stub, typename Request, typename Response>
Reply<Response> call(Stub& stub,
                     grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                     const Request& request,
                     std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  Reply<Response> reply;
  auto context = context_for(timeout);
  reply.status = (stub.*method)(context.get(), request, &reply.response);
  return reply;
}

struct Api {
  explicit Api(const std::shared_ptr<grpc::Channel>& channel);

  std::unique_ptr<v1::VmService::Stub> vm;
  std::unique_ptr<v1::MemoryService::Stub> memory;
  std::unique_ptr<v1::TlbService::Stub> tlb;
  std::unique_ptr<v1::NotifierService::Stub> notifier;
  std::unique_ptr<v1::FaultService::Stub> faults;
  std::unique_ptr<v1::GuestService::Stub> guest;
  std::unique_ptr<v1::DaemonService::Stub> daemon;
  std::unique_ptr<v1::HostPolicyService::Stub> policy;
};

}  // namespace hvmm::e2e
