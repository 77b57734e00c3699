// ChannelWriter: the one thread that writes the VM process's frames to the daemon.
//
// It takes messages from an OutboundQueue and writes each as one frame (frame.h), so frames
// never interleave and no other thread ever blocks on the socket: a daemon that stops reading
// stalls only this thread, while VM threads keep dropping (and counting) events. When a write
// fails (the daemon is gone) `on_broken` is called once and the rest is discarded.
#pragma once

#include <functional>
#include <thread>

#include "hvmm/base/result.h"
#include "hvmm/daemon/vmproc/outbound_queue.h"

namespace hvmm::daemon::vmproc {

class ChannelWriter {
 public:
  using BrokenCallback = std::function<void(const Error&)>;

  // Start writing `queue`'s messages to the stream socket `fd` (not owned).
  ChannelWriter(int fd, OutboundQueue& queue, BrokenCallback on_broken);
  // finish()
  ~ChannelWriter();
  ChannelWriter(const ChannelWriter&) = delete;
  ChannelWriter& operator=(const ChannelWriter&) = delete;

  // Close the queue and return once everything queued before was written (or discarded
  // because the channel broke). Idempotent.
  void finish();

 private:
  void run();

  int fd_;
  OutboundQueue& queue_;
  BrokenCallback on_broken_;
  std::thread thread_;  // last: it uses the members above
};

}  // namespace hvmm::daemon::vmproc
