// hvmm.v1 TlbService, NotifierService, FaultService, GuestService and DaemonService
// (services.h).
#include "hvmm/daemon/server/services.h"

namespace hvmm::daemon {

grpc::ServerUnaryReactor* TlbServiceImpl::Shootdown(grpc::CallbackServerContext* context,
                                                    const hvmm::v1::TlbShootdownRequest* request,
                                                    hvmm::v1::TlbShootdownResponse* response) {
  return forward_unary(backend_, context, request, response, HVMM_CHANNEL_BODY(tlb_shootdown));
}

grpc::ServerWriteReactor<hvmm::v1::NotifierEvent>* NotifierServiceImpl::Watch(
    grpc::CallbackServerContext*, const hvmm::v1::WatchNotifierRequest* request) {
  auto name = check_vm_name_lookup("name", request->name());
  VmFacts no_vm;
  auto fields = name ? check_request(*request, no_vm) : Result<void>(name.error());
  if (!fields) {
    return finish_stream_now<hvmm::v1::NotifierEvent>(to_status(fields.error()));
  }
  auto id = std::make_shared<uint64_t>(0);
  QueuedStream<hvmm::v1::NotifierEvent>::Options options;
  options.capacity = stream_buffer(request->buffer());
  options.policy = OverflowPolicy::kDropClient;
  options.buffer_name = "buffer";
  std::string vm = request->name();
  options.on_closed = [this, vm, id] {
    backend_.on_loop([this, vm, id] { backend_.vms.unwatch_notifier(vm, *id); });
  };
  auto started = QueuedStream<hvmm::v1::NotifierEvent>::start(std::move(options));
  backend_.on_loop([this, vm, id, copy = *request, state = started.state] {
    grpc::Status status = backend_.vms.watch_notifier(vm, copy, state, id.get());
    if (!status.ok()) {
      state->finish(status);
    }
  });
  return started.reactor;
}

grpc::ServerUnaryReactor* NotifierServiceImpl::ListSubscriptions(
    grpc::CallbackServerContext* context, const hvmm::v1::ListSubscriptionsRequest* request,
    hvmm::v1::ListSubscriptionsResponse* response) {
  auto name = check_vm_name_lookup("name", request->name());
  if (!name) {
    return finish_now(context, to_status(name.error()));
  }
  auto* reactor = context->DefaultReactor();
  Deadline deadline = backend_.deadline_for(context);
  backend_.on_loop([this, reactor, response, vm = request->name(), deadline] {
    backend_.vms.list_subscriptions(
        vm, deadline,
        [reactor, response](const grpc::Status& status,
                            const hvmm::v1::ListSubscriptionsResponse* answer) {
          if (status.ok()) {
            *response = *answer;
          }
          reactor->Finish(status);
        });
  });
  return reactor;
}

grpc::ServerUnaryReactor* NotifierServiceImpl::Age(grpc::CallbackServerContext* context,
                                                   const hvmm::v1::AgeRequest* request,
                                                   hvmm::v1::AgeResponse* response) {
  return forward_unary(backend_, context, request, response, HVMM_CHANNEL_BODY(age));
}

grpc::ServerUnaryReactor* NotifierServiceImpl::Invalidate(
    grpc::CallbackServerContext* context, const hvmm::v1::InvalidateRequest* request,
    hvmm::v1::InvalidateResponse* response) {
  return forward_unary(backend_, context, request, response, HVMM_CHANNEL_BODY(invalidate));
}

grpc::ServerWriteReactor<hvmm::v1::Fault>* FaultServiceImpl::Watch(
    grpc::CallbackServerContext*, const hvmm::v1::WatchFaultsRequest* request) {
  auto checked = check_watch_faults(*request);
  if (!checked) {
    return finish_stream_now<hvmm::v1::Fault>(to_status(checked.error()));
  }
  auto id = std::make_shared<uint64_t>(0);
  QueuedStream<hvmm::v1::Fault>::Options options;
  options.capacity = stream_buffer(request->buffer());
  options.policy = OverflowPolicy::kDropMessages;
  options.mark_dropped = [](hvmm::v1::Fault& fault, uint64_t dropped) {
    fault.set_dropped_before(dropped);
  };
  options.on_closed = [this, id] {
    backend_.on_loop([this, id] { backend_.vms.unwatch_faults(*id); });
  };
  auto started = QueuedStream<hvmm::v1::Fault>::start(std::move(options));
  backend_.on_loop([this, id, copy = *request, state = started.state] {
    grpc::Status status = backend_.vms.watch_faults(copy, state, id.get());
    if (!status.ok()) {
      state->finish(status);
    }
  });
  return started.reactor;
}

grpc::ServerUnaryReactor* GuestServiceImpl::StartWorkload(
    grpc::CallbackServerContext* context, const hvmm::v1::StartWorkloadRequest* request,
    hvmm::v1::StartWorkloadResponse* response) {
  return forward_unary(backend_, context, request, response, HVMM_CHANNEL_BODY(start_workload));
}

grpc::ServerUnaryReactor* GuestServiceImpl::VerifyWorkload(
    grpc::CallbackServerContext* context, const hvmm::v1::WorkloadRequest* request,
    hvmm::v1::VerifyWorkloadResponse* response) {
  return forward_unary(backend_, context, request, response, HVMM_CHANNEL_BODY(verify_workload));
}

grpc::ServerUnaryReactor* GuestServiceImpl::ExitWorkload(grpc::CallbackServerContext* context,
                                                         const hvmm::v1::WorkloadRequest* request,
                                                         hvmm::v1::ExitWorkloadResponse* response) {
  return forward_unary(backend_, context, request, response, HVMM_CHANNEL_BODY(exit_workload));
}

grpc::ServerUnaryReactor* GuestServiceImpl::Probe(grpc::CallbackServerContext* context,
                                                  const hvmm::v1::ProbeRequest* request,
                                                  hvmm::v1::ProbeResponse* response) {
  return forward_unary(backend_, context, request, response, HVMM_CHANNEL_BODY(probe));
}

grpc::ServerUnaryReactor* DaemonServiceImpl::GetDaemonInfo(
    grpc::CallbackServerContext* context, const hvmm::v1::GetDaemonInfoRequest*,
    hvmm::v1::GetDaemonInfoResponse* response) {
  auto* reactor = context->DefaultReactor();
  backend_.on_loop([this, reactor, response] {
    *response = backend_.vms.info();
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

}  // namespace hvmm::daemon
