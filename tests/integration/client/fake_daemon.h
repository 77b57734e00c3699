// FakeDaemon: an in-process gRPC server on a temporary unix socket serving every hvmm.v1
// service with canned answers and recording every request, for the client's tests only (the
// real daemon is driven end to end by tests/e2e).
//
// Methods are named "Service.Method" ("Vm.Create", "Memory.DumpStage2", "Notifier.Watch",
// "Policy.GetHostPolicy" for HostPolicyService).
// A unary method answers its queued responses in order (the last one repeats) or, when a
// status is set, fails with it; a stream method writes its canned messages, then ends with
// its status (OK unless set).
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hvmm::client::testing {

// Recorder is the state the fake services share.
class Recorder {
 public:
  void record(const std::string& method, const google::protobuf::Message& request);
  // Answer a unary call: the status if one is set, else the next queued response.
  grpc::Status answer(const std::string& method, google::protobuf::Message& response);
  // The canned messages of a stream, serialized, and its final status.
  std::vector<std::string> stream(const std::string& method);
  grpc::Status stream_status(const std::string& method);

  void respond(const std::string& method, const google::protobuf::Message& response);
  void fail(const std::string& method, grpc::Status status);
  void add_stream_message(const std::string& method, const google::protobuf::Message& message);
  std::vector<std::string> requests(const std::string& method);

 private:
  std::mutex lock_;
  std::map<std::string, std::vector<std::string>> requests_;
  std::map<std::string, std::vector<std::string>> responses_;
  std::map<std::string, size_t> answered_;
  std::map<std::string, grpc::Status> statuses_;
  std::map<std::string, std::vector<std::string>> streams_;
};

class FakeDaemon {
 public:
  FakeDaemon();
  ~FakeDaemon();
  FakeDaemon(const FakeDaemon&) = delete;
  FakeDaemon& operator=(const FakeDaemon&) = delete;

  const std::string& socket() const { return socket_; }

  void respond(const std::string& method, const google::protobuf::Message& response) {
    recorder_.respond(method, response);
  }
  void fail(const std::string& method, grpc::Status status) {
    recorder_.fail(method, std::move(status));
  }
  void stream(const std::string& method, const google::protobuf::Message& message) {
    recorder_.add_stream_message(method, message);
  }

  // Every request of `method` so far, parsed as T.
  template <typename T>
  std::vector<T> requests(const std::string& method) {
    std::vector<T> parsed;
    for (const std::string& bytes : recorder_.requests(method)) {
      parsed.emplace_back();
      parsed.back().ParseFromString(bytes);
    }
    return parsed;
  }

  // The overall status of the standard health service (SERVING from the start).
  void set_serving(bool serving);

  // The number of requests of every method together.
  size_t request_count();

 private:
  std::string dir_;
  std::string socket_;
  Recorder recorder_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace hvmm::client::testing
