// Calls to gRPC services the tests have no generated stubs for (health checking, server
// reflection: Debian ships their servers, not their .proto files), with hand-encoded protobuf
// bytes through grpc::GenericStub, and a reader of protobuf wire format for the answers.
// Header-only, tests only.
#pragma once

#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace hvmm::testing {

inline grpc::ByteBuffer to_buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

inline std::string from_buffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (buffer.Dump(&slices).ok()) {
    for (const grpc::Slice& slice : slices) {
      bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
  }
  return bytes;
}

// A unary call of `method` ("/pkg.Service/Method") with raw request bytes.
inline grpc::Status raw_unary(const std::shared_ptr<grpc::Channel>& channel,
                              const std::string& method, const std::string& request,
                              std::string* response,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  grpc::CompletionQueue queue;
  grpc::ByteBuffer request_buffer = to_buffer(request);
  auto call = stub.PrepareUnaryCall(&context, method, request_buffer, &queue);
  call->StartCall();
  grpc::ByteBuffer response_buffer;
  grpc::Status status;
  call->Finish(&response_buffer, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  queue.Next(&tag, &ok);
  *response = from_buffer(response_buffer);
  return status;
}

// The fields of a protobuf message by number (length-delimited ones as bytes, varints as
// their decimal text), or nullopt when `bytes` does not parse.
inline std::optional<std::vector<std::pair<int, std::string>>> wire_fields(
    const std::string& bytes) {
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(bytes)) {
    return std::nullopt;
  }
  std::vector<std::pair<int, std::string>> out;
  for (int i = 0; i < fields.field_count(); ++i) {
    const auto& field = fields.field(i);
    if (field.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      out.emplace_back(field.number(), field.length_delimited());
    } else if (field.type() == google::protobuf::UnknownField::TYPE_VARINT) {
      out.emplace_back(field.number(), std::to_string(field.varint()));
    }
  }
  return out;
}

// grpc.health.v1.Health/Check of the whole server: 1 SERVING, 2 NOT_SERVING, -1 no answer.
inline int health_status(const std::shared_ptr<grpc::Channel>& channel) {
  std::string response;
  grpc::Status status = raw_unary(channel, "/grpc.health.v1.Health/Check", "", &response,
                                  std::chrono::milliseconds(1000));
  if (!status.ok()) {
    return -1;
  }
  auto fields = wire_fields(response);
  if (!fields) {
    return -1;
  }
  for (const auto& [number, value] : *fields) {
    if (number == 1) {
      return std::stoi(value);
    }
  }
  return 0;  // UNKNOWN (the default value is not on the wire)
}

// The service names server reflection lists (grpc.reflection.v1alpha, list_services).
inline std::vector<std::string> reflected_services(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::CompletionQueue queue;
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &queue);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&] { return queue.Next(&tag, &ok) && ok; };
  std::vector<std::string> names;
  call->StartCall(reinterpret_cast<void*>(1));
  if (!step()) {
    return names;
  }
  // ServerReflectionRequest { list_services (7): "" }.
  grpc::ByteBuffer request = to_buffer(std::string("\x3a\x00", 2));
  call->Write(request, reinterpret_cast<void*>(2));
  if (!step()) {
    return names;
  }
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(3));
  if (step()) {
    // ServerReflectionResponse { list_services_response (6): { service (1): { name (1) } } }.
    auto top = wire_fields(from_buffer(response));
    for (const auto& [number, list] : top.value_or(decltype(top)::value_type{})) {
      if (number != 6) {
        continue;
      }
      for (const auto& [service_number, service] :
           wire_fields(list).value_or(decltype(top)::value_type{})) {
        for (const auto& [name_number, name] :
             wire_fields(service).value_or(decltype(top)::value_type{})) {
          if (service_number == 1 && name_number == 1) {
            names.push_back(name);
          }
        }
      }
    }
  }
  call->WritesDone(reinterpret_cast<void*>(4));
  step();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step();
  return names;
}

}  // namespace hvmm::testing
