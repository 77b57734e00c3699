// Api and the call helpers (api.h).
#include "api.h"

namespace hvmm::e2e {

std::string code_name(grpc::StatusCode code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const auto index = static_cast<size_t>(code);
  return index < std::size(kNames) ? kNames[index] : "CODE " + std::to_string(index);
}

std::string describe(const grpc::Status& status) {
  return code_name(status.error_code()) + " (" + std::to_string(status.error_code()) +
         "): " + status.error_message();
}

std::unique_ptr<grpc::ClientContext> context_for(std::chrono::milliseconds timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  return context;
}

Api::Api(const std::shared_ptr<grpc::Channel>& channel)
    : vm(v1::VmService::NewStub(channel)),
      memory(v1::MemoryService::NewStub(channel)),
      tlb(v1::TlbService::NewStub(channel)),
      notifier(v1::NotifierService::NewStub(channel)),
      faults(v1::FaultService::NewStub(channel)),
      guest(v1::GuestService::NewStub(channel)),
      daemon(v1::DaemonService::NewStub(channel)),
      policy(v1::HostPolicyService::NewStub(channel)) {}

}  // namespace hvmm::e2e
