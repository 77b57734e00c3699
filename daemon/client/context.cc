// The shared state of a client run: options, connection, and how commands end.
#include "hvmm/daemon/client/context.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "hvmm/daemon/client/exit_codes.h"
#include "hvmm/daemon/client/status_exit.h"
#include "hvmm/daemon/common/defaults.h"

namespace hvmm::client {

Context::Context(ClientIo& io) : io_(io), socket_(daemon::kDefaultSocket) {}

// stat() first: a missing socket is the common case (the daemon is not running) and its
// message should say so at once, not after gRPC's connection attempts.
std::shared_ptr<grpc::Channel> Context::channel() {
  if (channel_) {
    return channel_;
  }
  struct stat info {};
  if (::stat(socket_.c_str(), &info) != 0) {
    io_.err << "hvmm: no hvmmd socket at " << socket_ << ": " << std::strerror(errno)
            << " (is hvmmd running? --socket names another socket)\n";
    return nullptr;
  }
  if (!S_ISSOCK(info.st_mode)) {
    io_.err << "hvmm: " << socket_ << " is not a socket (--socket names hvmmd's unix socket)\n";
    return nullptr;
  }
  channel_ = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
  return channel_;
}

std::unique_ptr<grpc::ClientContext> Context::call(std::chrono::milliseconds wait) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + wait + kCallSlack);
  return context;
}

std::unique_ptr<grpc::ClientContext> Context::call_within(
    std::chrono::milliseconds deadline) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + deadline);
  return context;
}

int Context::finish(const grpc::Status& status) {
  if (status.ok()) {
    return kExitOk;
  }
  const std::string message = status.error_message().empty()
                                  ? std::string(status_code_name(status.error_code()))
                                  : status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    io_.err << "hvmm: cannot reach hvmmd at " << socket_ << ": " << message << "\n";
  } else {
    io_.err << "hvmm: " << message << "\n";
  }
  return exit_code_for(status.error_code());
}

int Context::bad_argument(const std::string& message) {
  io_.err << "hvmm: " << message << "\n";
  return kExitBadArguments;
}

int Context::unavailable_status() const {
  return kExitUnavailable;
}

// Every field printed (zeros too), so scripts need no defaults of their own.
void Context::print_json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string text;
  auto status = google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok()) {
    io_.err << "hvmm: cannot print " << message.GetTypeName() << " as JSON: " << status.ToString()
            << "\n";
    return;
  }
  io_.out << text << "\n";
}

}  // namespace hvmm::client
