// The gRPC services of hvmm.v1 (service.proto), as the daemon serves them (callback API).
#pragma once

#include "hvmm/daemon/server/backend.h"
#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::daemon {

class VmServiceImpl final : public hvmm::v1::VmService::CallbackService {
 public:
  explicit VmServiceImpl(Backend& backend) : backend_(backend) {}
  grpc::ServerUnaryReactor* Create(grpc::CallbackServerContext* context,
                                   const hvmm::v1::CreateVmRequest* request,
                                   hvmm::v1::CreateVmResponse* response) override;
  grpc::ServerUnaryReactor* Start(grpc::CallbackServerContext* context,
                                  const hvmm::v1::StartVmRequest* request,
                                  hvmm::v1::StartVmResponse* response) override;
  grpc::ServerUnaryReactor* Stop(grpc::CallbackServerContext* context,
                                 const hvmm::v1::StopVmRequest* request,
                                 hvmm::v1::StopVmResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const hvmm::v1::DeleteVmRequest* request,
                                   hvmm::v1::DeleteVmResponse* response) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                 const hvmm::v1::ListVmsRequest* request,
                                 hvmm::v1::ListVmsResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const hvmm::v1::GetVmRequest* request,
                                hvmm::v1::GetVmResponse* response) override;
  grpc::ServerWriteReactor<hvmm::v1::ConsoleLine>* StreamConsole(
      grpc::CallbackServerContext* context, const hvmm::v1::StreamConsoleRequest* request) override;

 private:
  Backend& backend_;
};

class MemoryServiceImpl final : public hvmm::v1::MemoryService::CallbackService {
 public:
  explicit MemoryServiceImpl(Backend& backend) : backend_(backend) {}
  grpc::ServerUnaryReactor* GetMemoryStats(grpc::CallbackServerContext* context,
                                           const hvmm::v1::GetMemoryStatsRequest* request,
                                           hvmm::v1::GetMemoryStatsResponse* response) override;
  grpc::ServerUnaryReactor* SetBalloonTarget(grpc::CallbackServerContext* context,
                                             const hvmm::v1::SetBalloonTargetRequest* request,
                                             hvmm::v1::SetBalloonTargetResponse* response) override;
  grpc::ServerWriteReactor<hvmm::v1::BalloonProgress>* WatchBalloon(
      grpc::CallbackServerContext* context, const hvmm::v1::WatchBalloonRequest* request) override;
  grpc::ServerUnaryReactor* Reclaim(grpc::CallbackServerContext* context,
                                    const hvmm::v1::ReclaimRequest* request,
                                    hvmm::v1::ReclaimResponse* response) override;
  grpc::ServerUnaryReactor* DumpStage2(grpc::CallbackServerContext* context,
                                       const hvmm::v1::DumpStage2Request* request,
                                       hvmm::v1::DumpStage2Response* response) override;
  grpc::ServerUnaryReactor* GetDirtyLog(grpc::CallbackServerContext* context,
                                        const hvmm::v1::GetDirtyLogRequest* request,
                                        hvmm::v1::GetDirtyLogResponse* response) override;

 private:
  Backend& backend_;
};

class TlbServiceImpl final : public hvmm::v1::TlbService::CallbackService {
 public:
  explicit TlbServiceImpl(Backend& backend) : backend_(backend) {}
  grpc::ServerUnaryReactor* Shootdown(grpc::CallbackServerContext* context,
                                      const hvmm::v1::TlbShootdownRequest* request,
                                      hvmm::v1::TlbShootdownResponse* response) override;

 private:
  Backend& backend_;
};

class NotifierServiceImpl final : public hvmm::v1::NotifierService::CallbackService {
 public:
  explicit NotifierServiceImpl(Backend& backend) : backend_(backend) {}
  grpc::ServerWriteReactor<hvmm::v1::NotifierEvent>* Watch(
      grpc::CallbackServerContext* context, const hvmm::v1::WatchNotifierRequest* request) override;
  grpc::ServerUnaryReactor* ListSubscriptions(
      grpc::CallbackServerContext* context, const hvmm::v1::ListSubscriptionsRequest* request,
      hvmm::v1::ListSubscriptionsResponse* response) override;
  grpc::ServerUnaryReactor* Age(grpc::CallbackServerContext* context,
                                const hvmm::v1::AgeRequest* request,
                                hvmm::v1::AgeResponse* response) override;
  grpc::ServerUnaryReactor* Invalidate(grpc::CallbackServerContext* context,
                                       const hvmm::v1::InvalidateRequest* request,
                                       hvmm::v1::InvalidateResponse* response) override;

 private:
  Backend& backend_;
};

class FaultServiceImpl final : public hvmm::v1::FaultService::CallbackService {
 public:
  explicit FaultServiceImpl(Backend& backend) : backend_(backend) {}
  grpc::ServerWriteReactor<hvmm::v1::Fault>* Watch(
      grpc::CallbackServerContext* context, const hvmm::v1::WatchFaultsRequest* request) override;

 private:
  Backend& backend_;
};

class GuestServiceImpl final : public hvmm::v1::GuestService::CallbackService {
 public:
  explicit GuestServiceImpl(Backend& backend) : backend_(backend) {}
  grpc::ServerUnaryReactor* StartWorkload(grpc::CallbackServerContext* context,
                                          const hvmm::v1::StartWorkloadRequest* request,
                                          hvmm::v1::StartWorkloadResponse* response) override;
  grpc::ServerUnaryReactor* VerifyWorkload(grpc::CallbackServerContext* context,
                                           const hvmm::v1::WorkloadRequest* request,
                                           hvmm::v1::VerifyWorkloadResponse* response) override;
  grpc::ServerUnaryReactor* ExitWorkload(grpc::CallbackServerContext* context,
                                         const hvmm::v1::WorkloadRequest* request,
                                         hvmm::v1::ExitWorkloadResponse* response) override;
  grpc::ServerUnaryReactor* Probe(grpc::CallbackServerContext* context,
                                  const hvmm::v1::ProbeRequest* request,
                                  hvmm::v1::ProbeResponse* response) override;

 private:
  Backend& backend_;
};

class DaemonServiceImpl final : public hvmm::v1::DaemonService::CallbackService {
 public:
  explicit DaemonServiceImpl(Backend& backend) : backend_(backend) {}
  grpc::ServerUnaryReactor* GetDaemonInfo(grpc::CallbackServerContext* context,
                                          const hvmm::v1::GetDaemonInfoRequest* request,
                                          hvmm::v1::GetDaemonInfoResponse* response) override;

 private:
  Backend& backend_;
};

class HostPolicyServiceImpl final : public hvmm::v1::HostPolicyService::CallbackService {
 public:
  explicit HostPolicyServiceImpl(Backend& backend) : backend_(backend) {}
  grpc::ServerUnaryReactor* GetHostPolicy(grpc::CallbackServerContext* context,
                                          const hvmm::v1::GetHostPolicyRequest* request,
                                          hvmm::v1::GetHostPolicyResponse* response) override;
  grpc::ServerUnaryReactor* SetHostPolicy(grpc::CallbackServerContext* context,
                                          const hvmm::v1::SetHostPolicyRequest* request,
                                          hvmm::v1::SetHostPolicyResponse* response) override;
  grpc::ServerWriteReactor<hvmm::v1::PolicyDecisionEvent>* WatchDecisions(
      grpc::CallbackServerContext* context,
      const hvmm::v1::WatchPolicyDecisionsRequest* request) override;

 private:
  Backend& backend_;
};

// A stream that ends before it starts (a bad request, an unknown VM).
template <typename Msg>
grpc::ServerWriteReactor<Msg>* finish_stream_now(const grpc::Status& status) {
  auto started = QueuedStream<Msg>::start({});
  started.state->finish(status);
  return started.reactor;
}

}  // namespace hvmm::daemon
