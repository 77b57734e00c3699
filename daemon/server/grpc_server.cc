// The daemon's gRPC server (grpc_server.h).
#include "hvmm/daemon/server/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_posix.h>

#include <fstream>
#include <sstream>

namespace hvmm::daemon {

namespace {

Result<std::string> read_pem(const char* key, const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    return make_error(ErrorCode::kInvalidArgument, "{}: cannot read '{}'", key, path);
  }
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

Result<std::shared_ptr<grpc::ServerCredentials>> tcp_credentials(const DaemonConfig& config) {
  if (config.insecure_tcp) {
    return grpc::InsecureServerCredentials();
  }
  auto cert = read_pem("tls-cert", config.tls_cert);
  HVMM_TRY(cert);
  auto key = read_pem("tls-key", config.tls_key);
  HVMM_TRY(key);
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({*key, *cert});
  if (!config.tls_ca.empty()) {
    auto ca = read_pem("tls-ca", config.tls_ca);
    HVMM_TRY(ca);
    options.pem_root_certs = *ca;
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

}  // namespace

GrpcServer::GrpcServer(Backend& backend) {
  services_.push_back(std::make_unique<VmServiceImpl>(backend));
  services_.push_back(std::make_unique<MemoryServiceImpl>(backend));
  services_.push_back(std::make_unique<TlbServiceImpl>(backend));
  services_.push_back(std::make_unique<NotifierServiceImpl>(backend));
  services_.push_back(std::make_unique<FaultServiceImpl>(backend));
  services_.push_back(std::make_unique<GuestServiceImpl>(backend));
  services_.push_back(std::make_unique<DaemonServiceImpl>(backend));
  services_.push_back(std::make_unique<HostPolicyServiceImpl>(backend));
}

GrpcServer::~GrpcServer() {
  shutdown(std::chrono::milliseconds(0));
}

Result<std::unique_ptr<GrpcServer>> GrpcServer::start(Backend& backend,
                                                      const DaemonConfig& config) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::unique_ptr<GrpcServer> server(new GrpcServer(backend));
  grpc::ServerBuilder builder;
  for (auto& service : server->services_) {
    builder.RegisterService(service.get());
  }
  if (!config.tcp_listen.empty()) {
    auto credentials = tcp_credentials(config);
    HVMM_TRY(credentials);
    builder.AddListeningPort(config.tcp_listen, *credentials, &server->tcp_port_);
  }
  server->server_ = builder.BuildAndStart();
  if (!server->server_) {
    return make_error(ErrorCode::kUnavailable, "listen-tcp: cannot serve gRPC on '{}'",
                      config.tcp_listen);
  }
  if (!config.tcp_listen.empty() && server->tcp_port_ == 0) {
    return make_error(ErrorCode::kUnavailable, "listen-tcp: cannot listen on '{}'",
                      config.tcp_listen);
  }
  return server;
}

void GrpcServer::add_connection(int fd) {
  grpc::AddInsecureChannelFromFd(server_.get(), fd);
}

void GrpcServer::set_serving(bool serving) {
  if (auto* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(serving);
  }
}

void GrpcServer::shutdown(std::chrono::milliseconds grace) {
  if (shut_down_ || !server_) {
    return;
  }
  shut_down_ = true;
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
}

}  // namespace hvmm::daemon
