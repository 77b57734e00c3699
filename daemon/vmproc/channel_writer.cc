// The VM process's writer thread (channel_writer.h).
#include "hvmm/daemon/vmproc/channel_writer.h"

#include "hvmm/daemon/channel/frame.h"

namespace hvmm::daemon::vmproc {

ChannelWriter::ChannelWriter(int fd, OutboundQueue& queue, BrokenCallback on_broken)
    : fd_(fd), queue_(queue), on_broken_(std::move(on_broken)), thread_([this] { run(); }) {}

ChannelWriter::~ChannelWriter() {
  finish();
}

void ChannelWriter::finish() {
  queue_.close();
  if (thread_.joinable()) {
    thread_.join();
  }
}

// Until the queue is closed and drained; after a failed write, only drain.
void ChannelWriter::run() {
  bool broken = false;
  while (auto message = queue_.take()) {
    if (broken) {
      continue;
    }
    std::string payload;
    if (!message->SerializeToString(&payload)) {
      continue;  // cannot happen for messages built here; never worth killing the VM
    }
    if (auto written = write_frame(fd_, payload); !written) {
      broken = true;
      if (on_broken_) {
        on_broken_(written.error());
      }
    }
  }
}

}  // namespace hvmm::daemon::vmproc
