// The daemon's end of a VM process's channel (vm_channel.h).
#include "hvmm/daemon/server/vm_channel.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>

#include "hvmm/daemon/server/log.h"

namespace hvmm::daemon {

namespace asio = boost::asio;

std::string request_name(const supervisor::Request& request) {
  const auto* field = supervisor::Request::descriptor()->FindFieldByNumber(request.body_case());
  return field != nullptr ? field->name() : "empty request";
}

VmChannel::VmChannel(asio::io_context& io, vmm::UniqueFd fd, std::string vm_name,
                     Callbacks callbacks)
    : io_(io),
      socket_(io),
      vm_name_(std::move(vm_name)),
      callbacks_(std::move(callbacks)),
      read_buffer_(std::make_shared<std::array<char, 65536>>()) {
  // The socket takes a duplicate; `fd` closes the original when it goes out of scope.
  int owned = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0);
  boost::system::error_code error;
  if (owned >= 0) {
    socket_.assign(asio::local::stream_protocol(), owned, error);
  }
  if (owned < 0 || error) {
    if (owned >= 0) {
      ::close(owned);
    }
    open_ = false;
  }
}

VmChannel::~VmChannel() {
  close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "VM '" + vm_name_ + "': channel closed"));
}

void VmChannel::start() {
  read_more();
}

void VmChannel::read_more() {
  if (!open_) {
    return;
  }
  std::weak_ptr<VmChannel> weak = weak_from_this();
  auto buffer = read_buffer_;
  socket_.async_read_some(
      asio::buffer(*buffer), [weak, buffer](const boost::system::error_code& error, size_t bytes) {
        auto self = weak.lock();
        if (!self || !self->open_) {
          return;
        }
        if (error) {
          // ECONNRESET: the VM process closed with our frames unread; the same end.
          const bool ended = error == asio::error::eof || error == asio::error::connection_reset;
          self->end(ended ? "end of stream" : "read: " + error.message(), false);
          return;
        }
        self->on_read(bytes);
      });
}

void VmChannel::on_read(size_t bytes) {
  decoder_.feed(std::string_view(read_buffer_->data(), bytes));
  for (;;) {
    auto next = decoder_.next();
    if (!next) {
      end("bad frame: " + next.error().message, true);
      return;
    }
    if (!next->has_value()) {
      break;
    }
    handle(**next);
    if (!open_) {
      return;
    }
  }
  read_more();
}

void VmChannel::handle(const std::string& payload) {
  supervisor::ToDaemon message;
  if (!message.ParseFromString(payload)) {
    end("a frame of " + std::to_string(payload.size()) + " bytes does not parse as ToDaemon", true);
    return;
  }
  switch (message.body_case()) {
    case supervisor::ToDaemon::kResponse:
      handle_response(*message.mutable_response());
      return;
    case supervisor::ToDaemon::kEvent:
      if (callbacks_.on_event) {
        callbacks_.on_event(message.event());
      }
      return;
    default:
      log::warn("vm channel: message without a body ignored", {{"vm", vm_name_}});
      return;
  }
}

void VmChannel::handle_response(supervisor::Response& response) {
  auto it = pending_.find(response.id());
  if (it == pending_.end()) {
    // Answered after its deadline (or never asked): nobody waits for it any more.
    log::debug("vm channel: late or unknown response dropped",
               {{"vm", vm_name_}, {"id", response.id()}});
    return;
  }
  Pending pending = std::move(it->second);
  pending_.erase(it);
  pending.timer->cancel();
  int code = response.code();
  if (code < 0 || code > 16) {
    pending.done(grpc::Status(grpc::StatusCode::UNKNOWN,
                              "VM '" + vm_name_ + "' answered " + pending.what + " with code " +
                                  std::to_string(code) + ": " + response.message()),
                 nullptr);
    return;
  }
  if (code != 0) {
    pending.done(grpc::Status(static_cast<grpc::StatusCode>(code), response.message()), nullptr);
    return;
  }
  pending.done(grpc::Status::OK, &response);
}

bool VmChannel::enqueue(const google::protobuf::Message& message) {
  std::string frame = encode_frame(message.SerializeAsString());
  if (queued_bytes_ + frame.size() > kMaxQueuedBytes) {
    return false;
  }
  queued_bytes_ += frame.size();
  write_queue_.push_back(std::move(frame));
  write_next();
  return true;
}

void VmChannel::write_next() {
  if (writing_ || write_queue_.empty() || !open_) {
    return;
  }
  writing_ = true;
  std::weak_ptr<VmChannel> weak = weak_from_this();
  // The front frame stays in the queue (and alive) until its write completes.
  asio::async_write(socket_, asio::buffer(write_queue_.front()),
                    [weak](const boost::system::error_code& error, size_t) {
                      auto self = weak.lock();
                      if (!self || !self->open_) {
                        return;
                      }
                      self->writing_ = false;
                      self->queued_bytes_ -= self->write_queue_.front().size();
                      self->write_queue_.pop_front();
                      if (error) {
                        self->end("write: " + error.message(), false);
                        return;
                      }
                      self->write_next();
                    });
}

void VmChannel::send_launch(const supervisor::Launch& launch) {
  supervisor::ToVm message;
  *message.mutable_launch() = launch;
  enqueue(message);
}

void VmChannel::send_prepare(const supervisor::Prepare& prepare) {
  supervisor::ToVm message;
  *message.mutable_prepare() = prepare;
  enqueue(message);
}

void VmChannel::rebind(std::string vm_name, Callbacks callbacks) {
  vm_name_ = std::move(vm_name);
  callbacks_ = std::move(callbacks);
}

void VmChannel::request(supervisor::Request request, std::chrono::steady_clock::time_point deadline,
                        ResponseHandler done) {
  std::string what = request_name(request);
  if (!open_) {
    done(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      "VM '" + vm_name_ + "': its channel is closed (the VM process is ending)"),
         nullptr);
    return;
  }
  uint64_t id = next_id_++;
  request.set_id(id);
  supervisor::ToVm message;
  *message.mutable_request() = std::move(request);
  if (!enqueue(message)) {
    done(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      "VM '" + vm_name_ + "': " + std::to_string(kMaxQueuedBytes >> 20) +
                          " MiB of requests are queued for it (the VM process is not reading)"),
         nullptr);
    return;
  }
  auto timer = std::make_unique<asio::steady_timer>(io_, deadline);
  std::weak_ptr<VmChannel> weak = weak_from_this();
  timer->async_wait([weak, id](const boost::system::error_code& error) {
    auto self = weak.lock();
    if (!error && self) {
      self->expire(id);
    }
  });
  pending_.emplace(id, Pending{std::move(done), std::move(timer), std::move(what)});
}

void VmChannel::expire(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) {
    return;
  }
  Pending pending = std::move(it->second);
  pending_.erase(it);
  pending.done(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                            "VM '" + vm_name_ + "' did not answer " + pending.what + " in time"),
               nullptr);
}

void VmChannel::end(const std::string& reason, bool protocol_error) {
  if (!open_) {
    return;
  }
  // The owner hears first: a VM process that broke the protocol is killed before it can see
  // its channel close (and exit as if the daemon had gone).
  if (callbacks_.on_closed) {
    callbacks_.on_closed(reason, protocol_error);
  }
  close(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                     "VM '" + vm_name_ + "': its channel ended (" + reason + ")"));
}

void VmChannel::close(const grpc::Status& status) {
  if (open_) {
    open_ = false;
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  // Completing a request can start another one on this channel: it fails at once (closed).
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, entry] : pending) {
    entry.timer->cancel();
    entry.done(status, nullptr);
  }
  write_queue_.clear();
  queued_bytes_ = 0;
}

}  // namespace hvmm::daemon
