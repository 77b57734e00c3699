// GrpcServer: the gRPC server of hvmm.v1 with health checking and reflection. Its unix-socket
// connections come from UnixListener (one at a time, after their peer credentials were
// checked); TCP, when configured, is gRPC's own listener with TLS (client certificates
// required when a CA is given), or without TLS only when insecure-tcp says so.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <vector>

#include "hvmm/base/result.h"
#include "hvmm/daemon/server/config.h"
#include "hvmm/daemon/server/services.h"

namespace hvmm::daemon {

class GrpcServer {
 public:
  static Result<std::unique_ptr<GrpcServer>> start(Backend& backend, const DaemonConfig& config);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Serve a connected socket (ownership passes to gRPC).
  void add_connection(int fd);
  // Health: SERVING or NOT_SERVING for every service.
  void set_serving(bool serving);
  // Stop: RPCs still running after `grace` are cancelled.
  void shutdown(std::chrono::milliseconds grace);
  // The TCP port bound (0 without TCP).
  int tcp_port() const { return tcp_port_; }

 private:
  explicit GrpcServer(Backend& backend);

  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  int tcp_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace hvmm::daemon
