// hvmm.v1.VmService (services.h).
#include "hvmm/daemon/server/log.h"
#include "hvmm/daemon/server/services.h"

namespace hvmm::daemon {

namespace {

constexpr uint32_t kDefaultGraceMs = 10000;

// A VmDone that finishes `reactor`, copying the VM into `target` on success.
VmDone finish_with_vm(grpc::ServerUnaryReactor* reactor, hvmm::v1::Vm* target) {
  return [reactor, target](const grpc::Status& status, const hvmm::v1::Vm* vm) {
    if (status.ok() && vm != nullptr) {
      *target = *vm;
    }
    reactor->Finish(status);
  };
}

}  // namespace

grpc::ServerUnaryReactor* VmServiceImpl::Create(grpc::CallbackServerContext* context,
                                                const hvmm::v1::CreateVmRequest* request,
                                                hvmm::v1::CreateVmResponse* response) {
  auto name = check_new_vm_name("name", request->name());
  if (!name) {
    return finish_now(context, to_status(name.error()));
  }
  auto* reactor = context->DefaultReactor();
  const uint64_t requested_unix_ns = unix_now_ns();  // a start is asked for from here
  // The spec is checked on the worker pool: it reads the kernel and initrd.
  boost::asio::post(backend_.work, [this, reactor, response, copy = *request, requested_unix_ns] {
    auto checked = check_spec(copy.name(), copy.spec(), backend_.bundled_kernel);
    if (!checked) {
      log::info("vm create refused", {{"vm", copy.name()}, {"error", checked.error().message}});
      reactor->Finish(to_status(checked.error()));
      return;
    }
    backend_.on_loop([this, reactor, response, copy, requested_unix_ns] {
      grpc::Status added = backend_.vms.add(copy.name(), copy.spec(), response->mutable_vm());
      if (!added.ok() || !copy.start()) {
        reactor->Finish(added);
        return;
      }
      backend_.vms.start(copy.name(), false, finish_with_vm(reactor, response->mutable_vm()),
                         requested_unix_ns);
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* VmServiceImpl::Start(grpc::CallbackServerContext* context,
                                               const hvmm::v1::StartVmRequest* request,
                                               hvmm::v1::StartVmResponse* response) {
  auto name = check_vm_name_lookup("name", request->name());
  if (!name) {
    return finish_now(context, to_status(name.error()));
  }
  auto* reactor = context->DefaultReactor();
  backend_.on_loop([this, reactor, response, vm = request->name(), wait = request->wait()] {
    backend_.vms.start(vm, wait, finish_with_vm(reactor, response->mutable_vm()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* VmServiceImpl::Stop(grpc::CallbackServerContext* context,
                                              const hvmm::v1::StopVmRequest* request,
                                              hvmm::v1::StopVmResponse* response) {
  auto name = check_vm_name_lookup("name", request->name());
  if (!name) {
    return finish_now(context, to_status(name.error()));
  }
  if (request->grace_ms() > kMaxWaitMs) {
    return finish_now(context, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                            "grace_ms: " + std::to_string(request->grace_ms()) +
                                                " ms is more than " + std::to_string(kMaxWaitMs)));
  }
  auto* reactor = context->DefaultReactor();
  std::chrono::milliseconds grace(request->grace_ms() != 0 ? request->grace_ms() : kDefaultGraceMs);
  backend_.on_loop(
      [this, reactor, response, vm = request->name(), grace, force = request->force()] {
        backend_.vms.stop(vm, grace, force, finish_with_vm(reactor, response->mutable_vm()));
      });
  return reactor;
}

grpc::ServerUnaryReactor* VmServiceImpl::Delete(grpc::CallbackServerContext* context,
                                                const hvmm::v1::DeleteVmRequest* request,
                                                hvmm::v1::DeleteVmResponse*) {
  auto name = check_vm_name_lookup("name", request->name());
  if (!name) {
    return finish_now(context, to_status(name.error()));
  }
  auto* reactor = context->DefaultReactor();
  backend_.on_loop([this, reactor, vm = request->name(), force = request->force()] {
    backend_.vms.remove(vm, force,
                        [reactor](const grpc::Status& status) { reactor->Finish(status); });
  });
  return reactor;
}

grpc::ServerUnaryReactor* VmServiceImpl::List(grpc::CallbackServerContext* context,
                                              const hvmm::v1::ListVmsRequest*,
                                              hvmm::v1::ListVmsResponse* response) {
  auto* reactor = context->DefaultReactor();
  backend_.on_loop([this, reactor, response] {
    backend_.vms.list([reactor, response](std::vector<hvmm::v1::Vm> vms) {
      for (hvmm::v1::Vm& vm : vms) {
        response->add_vms()->Swap(&vm);
      }
      reactor->Finish(grpc::Status::OK);
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* VmServiceImpl::Get(grpc::CallbackServerContext* context,
                                             const hvmm::v1::GetVmRequest* request,
                                             hvmm::v1::GetVmResponse* response) {
  auto name = check_vm_name_lookup("name", request->name());
  if (!name) {
    return finish_now(context, to_status(name.error()));
  }
  auto* reactor = context->DefaultReactor();
  backend_.on_loop([this, reactor, response, vm = request->name()] {
    backend_.vms.get(vm, finish_with_vm(reactor, response->mutable_vm()));
  });
  return reactor;
}

grpc::ServerWriteReactor<hvmm::v1::ConsoleLine>* VmServiceImpl::StreamConsole(
    grpc::CallbackServerContext*, const hvmm::v1::StreamConsoleRequest* request) {
  auto name = check_vm_name_lookup("name", request->name());
  if (!name) {
    return finish_stream_now<hvmm::v1::ConsoleLine>(to_status(name.error()));
  }
  auto id = std::make_shared<uint64_t>(0);
  QueuedStream<hvmm::v1::ConsoleLine>::Options options;
  // Room for the whole history and as much again of live lines.
  options.capacity = 2 * kConsoleHistory;
  options.policy = OverflowPolicy::kDropMessages;
  options.mark_dropped = [](hvmm::v1::ConsoleLine& line, uint64_t dropped) {
    line.set_dropped_before(dropped);
  };
  std::string vm = request->name();
  options.on_closed = [this, vm, id] {
    backend_.on_loop([this, vm, id] { backend_.vms.unwatch_console(vm, *id); });
  };
  auto started = QueuedStream<hvmm::v1::ConsoleLine>::start(std::move(options));
  backend_.on_loop([this, vm, id, state = started.state, history = request->history(),
                    follow = request->follow()] {
    grpc::Status status = backend_.vms.watch_console(vm, history, follow, state, id.get());
    if (!status.ok()) {
      state->finish(status);
    }
  });
  return started.reactor;
}

}  // namespace hvmm::daemon
