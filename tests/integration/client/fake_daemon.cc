// The fake hvmm.v1 services of the client's tests.
#include "fake_daemon.h"

#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "hvmm/v1/service.grpc.pb.h"

namespace hvmm::client::testing {
namespace {

namespace v1 = hvmm::v1;
using grpc::ServerContext;
using grpc::Status;

// Unary and stream handlers over the recorder.
struct Handlers {
  Recorder& recorder;
  template <typename Request, typename Response>
  Status unary(const char* method, const Request* request, Response* response) {
    recorder.record(method, *request);
    return recorder.answer(method, *response);
  }
  template <typename Request, typename Message>
  Status stream(const char* method, const Request* request, grpc::ServerWriter<Message>* writer) {
    recorder.record(method, *request);
    for (const std::string& bytes : recorder.stream(method)) {
      Message message;
      message.ParseFromString(bytes);
      writer->Write(message);
    }
    return recorder.stream_status(method);
  }
};

#define HVMM_FAKE_UNARY(service, name, Request, Response)                                    \
  Status name(ServerContext*, const v1::Request* request, v1::Response* response) override { \
    return handlers.unary(service "." #name, request, response);                             \
  }
#define HVMM_FAKE_STREAM(service, name, Request, Message)                                          \
  Status name(ServerContext*, const v1::Request* request, grpc::ServerWriter<v1::Message>* writer) \
      override {                                                                                   \
    return handlers.stream(service "." #name, request, writer);                                    \
  }

struct FakeVm final : v1::VmService::Service {
  explicit FakeVm(Recorder& recorder) : handlers{recorder} {}
  Handlers handlers;
  HVMM_FAKE_UNARY("Vm", Create, CreateVmRequest, CreateVmResponse)
  HVMM_FAKE_UNARY("Vm", Start, StartVmRequest, StartVmResponse)
  HVMM_FAKE_UNARY("Vm", Stop, StopVmRequest, StopVmResponse)
  HVMM_FAKE_UNARY("Vm", Delete, DeleteVmRequest, DeleteVmResponse)
  HVMM_FAKE_UNARY("Vm", List, ListVmsRequest, ListVmsResponse)
  HVMM_FAKE_UNARY("Vm", Get, GetVmRequest, GetVmResponse)
  HVMM_FAKE_STREAM("Vm", StreamConsole, StreamConsoleRequest, ConsoleLine)
};

struct FakeMemory final : v1::MemoryService::Service {
  explicit FakeMemory(Recorder& recorder) : handlers{recorder} {}
  Handlers handlers;
  HVMM_FAKE_UNARY("Memory", GetMemoryStats, GetMemoryStatsRequest, GetMemoryStatsResponse)
  HVMM_FAKE_UNARY("Memory", SetBalloonTarget, SetBalloonTargetRequest, SetBalloonTargetResponse)
  HVMM_FAKE_STREAM("Memory", WatchBalloon, WatchBalloonRequest, BalloonProgress)
  HVMM_FAKE_UNARY("Memory", Reclaim, ReclaimRequest, ReclaimResponse)
  HVMM_FAKE_UNARY("Memory", DumpStage2, DumpStage2Request, DumpStage2Response)
  HVMM_FAKE_UNARY("Memory", GetDirtyLog, GetDirtyLogRequest, GetDirtyLogResponse)
};

struct FakeTlb final : v1::TlbService::Service {
  explicit FakeTlb(Recorder& recorder) : handlers{recorder} {}
  Handlers handlers;
  HVMM_FAKE_UNARY("Tlb", Shootdown, TlbShootdownRequest, TlbShootdownResponse)
};

struct FakeNotifier final : v1::NotifierService::Service {
  explicit FakeNotifier(Recorder& recorder) : handlers{recorder} {}
  Handlers handlers;
  HVMM_FAKE_STREAM("Notifier", Watch, WatchNotifierRequest, NotifierEvent)
  HVMM_FAKE_UNARY("Notifier", ListSubscriptions, ListSubscriptionsRequest,
                  ListSubscriptionsResponse)
  HVMM_FAKE_UNARY("Notifier", Age, AgeRequest, AgeResponse)
  HVMM_FAKE_UNARY("Notifier", Invalidate, InvalidateRequest, InvalidateResponse)
};

struct FakeFaults final : v1::FaultService::Service {
  explicit FakeFaults(Recorder& recorder) : handlers{recorder} {}
  Handlers handlers;
  HVMM_FAKE_STREAM("Fault", Watch, WatchFaultsRequest, Fault)
};

struct FakeHostPolicy final : v1::HostPolicyService::Service {
  explicit FakeHostPolicy(Recorder& recorder) : handlers{recorder} {}
  Handlers handlers;
  HVMM_FAKE_UNARY("Policy", GetHostPolicy, GetHostPolicyRequest, GetHostPolicyResponse)
  HVMM_FAKE_UNARY("Policy", SetHostPolicy, SetHostPolicyRequest, SetHostPolicyResponse)
  HVMM_FAKE_STREAM("Policy", WatchDecisions, WatchPolicyDecisionsRequest, PolicyDecisionEvent)
};

struct FakeDaemonInfo final : v1::DaemonService::Service {
  explicit FakeDaemonInfo(Recorder& recorder) : handlers{recorder} {}
  Handlers handlers;
  HVMM_FAKE_UNARY("Daemon", GetDaemonInfo, GetDaemonInfoRequest, GetDaemonInfoResponse)
};

}  // namespace

void Recorder::record(const std::string& method, const google::protobuf::Message& request) {
  std::lock_guard guard(lock_);
  requests_[method].push_back(request.SerializeAsString());
}

grpc::Status Recorder::answer(const std::string& method, google::protobuf::Message& response) {
  std::lock_guard guard(lock_);
  if (auto status = statuses_.find(method); status != statuses_.end()) {
    return status->second;
  }
  auto queued = responses_.find(method);
  if (queued != responses_.end() && !queued->second.empty()) {
    size_t& next = answered_[method];
    response.ParseFromString(queued->second[std::min(next, queued->second.size() - 1)]);
    ++next;
  }
  return grpc::Status::OK;
}

std::vector<std::string> Recorder::stream(const std::string& method) {
  std::lock_guard guard(lock_);
  return streams_[method];
}

grpc::Status Recorder::stream_status(const std::string& method) {
  std::lock_guard guard(lock_);
  auto status = statuses_.find(method);
  return status == statuses_.end() ? grpc::Status::OK : status->second;
}

void Recorder::respond(const std::string& method, const google::protobuf::Message& response) {
  std::lock_guard guard(lock_);
  responses_[method].push_back(response.SerializeAsString());
}

void Recorder::fail(const std::string& method, grpc::Status status) {
  std::lock_guard guard(lock_);
  statuses_[method] = std::move(status);
}

void Recorder::add_stream_message(const std::string& method,
                                  const google::protobuf::Message& message) {
  std::lock_guard guard(lock_);
  streams_[method].push_back(message.SerializeAsString());
}

std::vector<std::string> Recorder::requests(const std::string& method) {
  std::lock_guard guard(lock_);
  return requests_[method];
}

// A fresh directory for the socket, so parallel tests never share one.
FakeDaemon::FakeDaemon() {
  std::string pattern = std::filesystem::temp_directory_path().string() + "/hvmm-fake-XXXXXX";
  EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
  dir_ = pattern;
  socket_ = dir_ + "/hvmmd.sock";
  services_.push_back(std::make_unique<FakeVm>(recorder_));
  services_.push_back(std::make_unique<FakeMemory>(recorder_));
  services_.push_back(std::make_unique<FakeTlb>(recorder_));
  services_.push_back(std::make_unique<FakeNotifier>(recorder_));
  services_.push_back(std::make_unique<FakeFaults>(recorder_));
  services_.push_back(std::make_unique<FakeDaemonInfo>(recorder_));
  services_.push_back(std::make_unique<FakeHostPolicy>(recorder_));
  // The standard health service, as hvmmd has it (`hvmm health` asks it).
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
  for (auto& service : services_) {
    builder.RegisterService(service.get());
  }
  server_ = builder.BuildAndStart();
  EXPECT_NE(server_, nullptr) << "cannot serve on " << socket_;
}

FakeDaemon::~FakeDaemon() {
  if (server_) {
    server_->Shutdown();
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void FakeDaemon::set_serving(bool serving) {
  server_->GetHealthCheckService()->SetServingStatus(serving);
}

size_t FakeDaemon::request_count() {
  size_t count = 0;
  for (const char* method :
       {"Vm.Create", "Vm.Start", "Vm.Stop", "Vm.Delete", "Vm.List", "Vm.Get", "Vm.StreamConsole",
        "Memory.GetMemoryStats", "Memory.SetBalloonTarget", "Memory.WatchBalloon", "Memory.Reclaim",
        "Memory.DumpStage2", "Tlb.Shootdown", "Notifier.Watch", "Fault.Watch",
        "Daemon.GetDaemonInfo", "Policy.GetHostPolicy", "Policy.SetHostPolicy",
        "Policy.WatchDecisions"}) {
    count += recorder_.requests(method).size();
  }
  return count;
}

}  // namespace hvmm::client::testing
