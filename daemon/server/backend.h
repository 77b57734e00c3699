// Backend: what every gRPC service of the daemon works with, and the helpers they share.
//
// Handlers run on gRPC's threads (the callback API). They check what needs no VM there, then
// post the rest to the event loop, where VmManager lives, and finish the RPC from the loop
// when the VM process answers. No handler blocks a gRPC thread: the slow parts (reading a
// kernel to check a Create) run on the backend's worker pool.
#pragma once

#include <grpcpp/grpcpp.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <cstdint>
#include <span>

#include "hvmm/base/result.h"
#include "hvmm/daemon/server/spec_check.h"
#include "hvmm/daemon/server/vm_manager.h"
#include "hvmm/daemon/spec/vm_spec.h"

namespace hvmm::daemon {

class HostPolicy;

struct Backend {
  boost::asio::io_context& io;
  VmManager& vms;
  boost::asio::thread_pool& work;
  std::span<const uint8_t> bundled_kernel;
  std::chrono::milliseconds request_deadline;  // the cap of a VM process's answer
  HostPolicy* policy = nullptr;                // the host memory policy (lives on the loop)

  // Run `function` on the event loop.
  template <typename Function>
  void on_loop(Function&& function) {
    boost::asio::post(io, std::forward<Function>(function));
  }

  // When a forwarded request gives up: the client's deadline, capped at request_deadline
  // plus `extra` (the time the request itself asks to wait, e.g. wait_ms).
  Deadline deadline_for(const grpc::CallbackServerContext* context,
                        std::chrono::milliseconds extra = std::chrono::milliseconds(0)) const {
    auto now = std::chrono::steady_clock::now();
    auto cap = request_deadline + extra;
    auto client = context->deadline() - std::chrono::system_clock::now();
    if (client < cap) {
      return now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                       std::max(client, std::chrono::system_clock::duration::zero()));
    }
    return now + cap;
  }
};

// The gRPC status of an hvmm Error.
inline grpc::Status to_status(const Error& error) {
  return grpc::Status(static_cast<grpc::StatusCode>(rpc_code(error.code)), error.message);
}

// A unary RPC that ends before it reaches the loop.
inline grpc::ServerUnaryReactor* finish_now(grpc::CallbackServerContext* context,
                                            const grpc::Status& status) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// Forward a request naming a VM to its VM process: the name is checked here, the request's
// fields against the VM on the loop (check_request), then the VM process answers. `set` puts
// the request into the channel Request; `take` moves the answer's body into the response (and
// says false when the body is missing).
template <typename Req, typename Resp, typename Set, typename Take>
grpc::ServerUnaryReactor* forward_unary(Backend& backend, grpc::CallbackServerContext* context,
                                        const Req* request, Resp* response, Set set, Take take,
                                        std::chrono::milliseconds extra = {}) {
  auto name = check_vm_name_lookup("name", request->name());
  if (!name) {
    return finish_now(context, to_status(name.error()));
  }
  auto* reactor = context->DefaultReactor();
  supervisor::Request message;
  set(message, *request);
  Deadline deadline = backend.deadline_for(context, extra);
  backend.on_loop([&backend, reactor, response, copy = *request, message = std::move(message),
                   deadline, take]() mutable {
    std::string vm_name = copy.name();
    backend.vms.forward(
        vm_name, [&copy](const VmFacts& facts) { return check_request(copy, facts); },
        std::move(message), deadline,
        [reactor, response, take, vm_name](const grpc::Status& status,
                                           supervisor::Response* answer) {
          if (!status.ok()) {
            reactor->Finish(status);
          } else if (!take(*answer, response)) {
            reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL,
                                         "VM '" + vm_name + "' answered with another body"));
          } else {
            reactor->Finish(grpc::Status::OK);
          }
        });
  });
  return reactor;
}

}  // namespace hvmm::daemon

// The `set` and `take` of forward_unary for a body named the same in Request and Response.
#define HVMM_CHANNEL_BODY(field)                                        \
  [](::hvmm::supervisor::v1::Request& message_, const auto& request_) { \
    *message_.mutable_##field() = request_;                             \
  },                                                                    \
      [](::hvmm::supervisor::v1::Response& answer_, auto* response_) {  \
        if (!answer_.has_##field()) {                                   \
          return false;                                                 \
        }                                                               \
        response_->Swap(answer_.mutable_##field());                     \
        return true;                                                    \
      }
