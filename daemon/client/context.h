// Context: what every client command shares. The global options (--socket, --json), the
// output streams, the connection to hvmmd (made when a command first needs it) and the ways a
// command ends: printing a gRPC status or an argument error as the documented exit status.
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "hvmm/daemon/client/client.h"

namespace hvmm::client {

// How long a unary call may take beyond what the command itself waits for.
inline constexpr std::chrono::seconds kCallSlack{30};

class Context {
 public:
  explicit Context(ClientIo& io);

  ClientIo& io() { return io_; }
  bool json() const { return json_; }
  std::string& socket_option() { return socket_; }
  bool& json_option() { return json_; }
  const std::string& socket() const { return socket_; }

  // The channel to the daemon's socket, or nullptr after printing why there is none (the
  // socket path does not exist or is not a socket); see unavailable_status().
  std::shared_ptr<grpc::Channel> channel();

  // A ClientContext whose deadline is now + `wait` + kCallSlack.
  std::unique_ptr<grpc::ClientContext> call(std::chrono::milliseconds wait = {}) const;

  // A ClientContext whose deadline is now + `deadline`, for calls that must be quick.
  std::unique_ptr<grpc::ClientContext> call_within(std::chrono::milliseconds deadline) const;

  // Print `status` ("hvmm: " and the daemon's message; UNAVAILABLE names the socket) and
  // return its exit status (OK: 0, nothing printed).
  int finish(const grpc::Status& status);

  // Print an argument error of the client's own and return 120.
  int bad_argument(const std::string& message);

  // The status of a command whose channel() was nullptr.
  int unavailable_status() const;

  // Print `message` as one line of protobuf's JSON mapping.
  void print_json(const google::protobuf::Message& message);

  // The command CLI11 selected, run after parsing.
  std::function<int()> action;

 private:
  ClientIo& io_;
  std::string socket_;
  bool json_ = false;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace hvmm::client
