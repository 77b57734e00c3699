// The VM process's reader thread and request workers (request_server.h).
#include "hvmm/daemon/vmproc/request_server.h"

#include "hvmm/daemon/spec/vm_spec.h"
#include "hvmm/daemon/vmproc/request_checks.h"

namespace hvmm::daemon::vmproc {

using hvmm::supervisor::v1::Request;
using hvmm::supervisor::v1::ToDaemon;
using hvmm::supervisor::v1::ToVm;

RequestServer::RequestServer(FrameReader reader, OutboundQueue& out, Serve serve,
                             ChannelEnd on_channel_end, unsigned workers, size_t max_pending)
    : reader_(std::move(reader)),
      out_(out),
      serve_(std::move(serve)),
      on_channel_end_(std::move(on_channel_end)),
      max_pending_(max_pending) {
  for (unsigned i = 0; i < std::max(workers, 1u); ++i) {
    workers_.emplace_back([this] { work_loop(); });
  }
  reader_thread_ = std::thread([this] { read_loop(); });
}

RequestServer::~RequestServer() {
  stop();
}

void RequestServer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  if (reader_thread_.joinable()) {
    reader_thread_.join();
  }
  for (auto& worker : workers_) {
    if (worker.joinable()) {
      worker.join();
    }
  }
}

// Frames until the stream ends; then the workers finish what is queued and leave.
void RequestServer::read_loop() {
  while (true) {
    auto frame = reader_.read();
    if (!frame) {
      end_channel(fmt::format("the channel failed: {}", frame.error().message));
      break;
    }
    if (!*frame) {
      end_channel("the daemon closed the channel");
      break;
    }
    if (!dispatch(**frame)) {
      break;
    }
  }
  {
    std::lock_guard lock(mutex_);
    reading_done_ = true;
  }
  queued_.notify_all();
}

// A Request is queued (or refused when too many wait); a second Launch is ignored, said on
// stderr; anything unparsable ends the channel (channel.proto): false, read no more.
bool RequestServer::dispatch(const std::string& payload) {
  ToVm message;
  if (!message.ParseFromString(payload)) {
    end_channel("the channel failed: a frame is not a ToVm message");
    return false;
  }
  if (message.has_launch()) {
    fmt::print(stderr, "hvmm-vm: ignoring a second Launch on the channel\n");
    return true;
  }
  if (!message.has_request()) {
    return true;  // a body this build does not know: nothing to answer
  }
  {
    std::lock_guard lock(mutex_);
    if (pending_.size() < max_pending_) {
      pending_.push_back(std::move(*message.mutable_request()));
      queued_.notify_one();
      return true;
    }
  }
  ToDaemon reply;
  auto* response = reply.mutable_response();
  response->set_id(message.request().id());
  fail(*response, make_error(ErrorCode::kResourceExhausted,
                             "more than {} requests are waiting for this VM", max_pending_));
  out_.send(std::move(reply));
  return true;
}

// Tell the owner once, unless it is the end stop() asked for.
void RequestServer::end_channel(const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      return;
    }
  }
  if (on_channel_end_) {
    on_channel_end_(why);
  }
}

void RequestServer::work_loop() {
  while (true) {
    Request request;
    {
      std::unique_lock lock(mutex_);
      queued_.wait(lock, [this] { return !pending_.empty() || reading_done_; });
      if (pending_.empty()) {
        return;
      }
      request = std::move(pending_.front());
      pending_.pop_front();
    }
    ToDaemon reply;
    *reply.mutable_response() = serve_(request);
    out_.send(std::move(reply));
  }
}

}  // namespace hvmm::daemon::vmproc
