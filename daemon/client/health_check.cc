// The gRPC health check through a generic stub (health_check.h).
#include "hvmm/daemon/client/health_check.h"

#include <fmt/format.h>
#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <future>
#include <vector>

namespace hvmm::client {

namespace {

// The value of varint field 1 of `bytes` (HealthCheckResponse.status); 0 when absent, as
// proto3 sends a zero enum (UNKNOWN) by leaving it out.
Result<int> decode_status(const std::string& bytes) {
  size_t at = 0;
  int status = 0;
  while (at < bytes.size()) {
    const auto tag = static_cast<unsigned char>(bytes[at++]);
    if ((tag & 7) != 0) {
      return make_error(ErrorCode::kDataLoss, "health response: field {} is not a varint",
                        tag >> 3);
    }
    uint64_t value = 0;
    for (int shift = 0; at < bytes.size() && shift < 64; shift += 7) {
      const auto byte = static_cast<unsigned char>(bytes[at++]);
      value |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) {
        break;
      }
    }
    if ((tag >> 3) == 1) {
      status = static_cast<int>(value);
    }
  }
  return status;
}

}  // namespace

Result<int> check_health(const std::shared_ptr<grpc::Channel>& channel,
                         std::chrono::milliseconds timeout) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  // HealthCheckRequest{service: ""} is empty on the wire, but the buffer must hold a slice:
  // a default ByteBuffer is no message at all (gRPC aborts on it as API misuse).
  grpc::Slice empty;
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(std::move(status)); });
  const grpc::Status status = done.get_future().get();
  if (!status.ok()) {
    return make_error(ErrorCode::kUnavailable, "health check: {} (code {})", status.error_message(),
                      static_cast<int>(status.error_code()));
  }
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) {
    return make_error(ErrorCode::kDataLoss, "health check: unreadable response");
  }
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return decode_status(bytes);
}

std::string health_status_name(int status) {
  switch (status) {
    case 0:
      return "UNKNOWN";
    case 1:
      return "SERVING";
    case 2:
      return "NOT_SERVING";
    case 3:
      return "SERVICE_UNKNOWN";
    default:
      return fmt::format("status {}", status);
  }
}

}  // namespace hvmm::client
