// RequestServer: the VM process's reader thread and request workers.
//
// The reader takes ToVm frames from the channel. Each Request is queued for a small pool of
// workers, so a slow request (a balloon wait, a guest's workload) holds up one worker, not
// the channel; each Response goes to the OutboundQueue when its request is done, in any
// order. More than `max_pending` requests waiting is RESOURCE_EXHAUSTED at once (the daemon
// has no business sending that many). The end of the stream, a read error or a frame that is
// not a ToVm ends the channel: `on_channel_end` is told why (the VM process stops the VM:
// a VM never outlives its daemon) and nothing more is read.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hvmm/daemon/channel/frame.h"
#include "hvmm/daemon/vmproc/outbound_queue.h"
#include "hvmm/supervisor/v1/channel.pb.h"

namespace hvmm::daemon::vmproc {

class RequestServer {
 public:
  using Serve = std::function<hvmm::supervisor::v1::Response(const hvmm::supervisor::v1::Request&)>;
  using ChannelEnd = std::function<void(const std::string& why)>;

  static constexpr unsigned kDefaultWorkers = 4;
  static constexpr size_t kDefaultMaxPending = 256;

  // Start reading with `reader` (which may hold bytes already read) and serving.
  RequestServer(FrameReader reader, OutboundQueue& out, Serve serve, ChannelEnd on_channel_end,
                unsigned workers = kDefaultWorkers, size_t max_pending = kDefaultMaxPending);
  // stop()
  ~RequestServer();
  RequestServer(const RequestServer&) = delete;
  RequestServer& operator=(const RequestServer&) = delete;

  // Wait for the reader to finish (the caller makes its read return: shutdown(SHUT_RD) of
  // the socket), then for the workers to serve what is queued. on_channel_end is not called
  // for an end that comes after stop() began. Idempotent.
  void stop();

 private:
  void read_loop();
  void work_loop();
  bool dispatch(const std::string& payload);
  void end_channel(const std::string& why);

  FrameReader reader_;
  OutboundQueue& out_;
  const Serve serve_;
  const ChannelEnd on_channel_end_;
  const size_t max_pending_;
  std::mutex mutex_;
  std::condition_variable queued_;
  std::deque<hvmm::supervisor::v1::Request> pending_;
  bool reading_done_ = false;  // no more requests will be queued
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::thread reader_thread_;  // last: it uses everything above
};

}  // namespace hvmm::daemon::vmproc
