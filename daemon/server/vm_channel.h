// VmChannel: the daemon's end of one VM process's channel (channel.proto), on the event loop.
//
// Frames are read asynchronously and decoded (FrameDecoder); each ToDaemon is either a
// Response, matched to its pending request by id, or an Event, handed to `on_event`. Requests
// are written asynchronously from a queue, so a VM process that stops reading never blocks
// the loop: beyond kMaxQueuedBytes of unwritten requests a request fails at once with
// RESOURCE_EXHAUSTED. Every request has a deadline; one the VM does not answer in time
// completes with DEADLINE_EXCEEDED, and a late answer is dropped. When the channel ends (end of
// stream, a read error, a frame that is oversized or does not parse) every pending request
// completes with UNAVAILABLE and `on_closed` says why. Not thread-safe: the loop's thread only.
#pragma once

#include <grpcpp/support/status.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "hvmm/daemon/channel/frame.h"
#include "hvmm/supervisor/v1/channel.pb.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::daemon {

namespace supervisor = hvmm::supervisor::v1;

// Completion of one request: OK with the response, or the status it failed with (the VM's
// code and message, DEADLINE_EXCEEDED, UNAVAILABLE...). `response` is null unless OK.
using ResponseHandler = std::function<void(const grpc::Status&, supervisor::Response* response)>;

class VmChannel : public std::enable_shared_from_this<VmChannel> {
 public:
  static constexpr size_t kMaxQueuedBytes = size_t{16} << 20;

  struct Callbacks {
    std::function<void(const supervisor::Event&)> on_event;
    // The channel ended; `reason` says how ("end of stream", "frame does not parse", ...),
    // `protocol_error` when the VM process broke the protocol.
    std::function<void(const std::string& reason, bool protocol_error)> on_closed;
  };

  VmChannel(boost::asio::io_context& io, vmm::UniqueFd fd, std::string vm_name,
            Callbacks callbacks);
  ~VmChannel();
  VmChannel(const VmChannel&) = delete;
  VmChannel& operator=(const VmChannel&) = delete;

  // Start reading (call once, after construction, from the loop).
  void start();
  // Send the Launch, the first frame (or the one after Prepare).
  void send_launch(const supervisor::Launch& launch);
  // Warm start: send Prepare, the first frame of a pool process.
  void send_prepare(const supervisor::Prepare& prepare);
  // Hand the channel to a new owner (a warm pool process becoming a VM's): events and the end
  // go to `callbacks` from now on, and messages name `vm_name`.
  void rebind(std::string vm_name, Callbacks callbacks);
  // Send `request` (its id is assigned here) and call `done` exactly once.
  void request(supervisor::Request request, std::chrono::steady_clock::time_point deadline,
               ResponseHandler done);
  // End the channel: close the socket, fail every pending request with `status`.
  void close(const grpc::Status& status);

  bool open() const { return open_; }
  size_t pending() const { return pending_.size(); }

 private:
  struct Pending {
    ResponseHandler done;
    std::unique_ptr<boost::asio::steady_timer> timer;
    std::string what;  // the request's body name, for messages
  };

  void read_more();
  void on_read(size_t bytes);
  void handle(const std::string& payload);
  void handle_response(supervisor::Response& response);
  bool enqueue(const google::protobuf::Message& message);
  void write_next();
  void expire(uint64_t id);
  void end(const std::string& reason, bool protocol_error);

  boost::asio::io_context& io_;
  boost::asio::local::stream_protocol::socket socket_;
  std::string vm_name_;
  Callbacks callbacks_;
  FrameDecoder decoder_;
  std::shared_ptr<std::array<char, 65536>> read_buffer_;
  std::deque<std::string> write_queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool open_ = true;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Pending> pending_;
};

// The name of a Request's body ("get_memory_stats"), for messages and logs.
std::string request_name(const supervisor::Request& request);

}  // namespace hvmm::daemon
