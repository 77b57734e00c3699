// OutboundQueue: what the VM process has to tell its daemon, in the order it goes out.
//
// Two kinds of message share the channel:
// - replies and lifecycle events (Response, Started, Failed, Exiting): never dropped; their
//   number is bounded by the requests in flight, so the queue for them has no limit;
// - notifier events and fault records: produced on VM threads (vCPUs, fault handlers, the
//   map's writers) that must never wait for the daemon. offer() never blocks: when `capacity`
//   of them are already waiting it drops the new one and counts it in an Event{dropped}
//   queued at the gap (consecutive drops share one), so the daemon learns how many it
//   missed, and where, when it gets there.
// Replies go first; events keep their order among themselves. take() blocks (for the
// writer thread); close() wakes it, and once everything queued has been taken take() says
// the queue is done. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

#include "hvmm/supervisor/v1/channel.pb.h"

namespace hvmm::daemon::vmproc {

// Counters of the droppable events.
struct OutboundStats {
  uint64_t notifier_sent = 0;  // taken for the channel
  uint64_t faults_sent = 0;
  uint64_t notifier_dropped = 0;  // offered while the queue was full
  uint64_t faults_dropped = 0;
};

class OutboundQueue {
 public:
  static constexpr size_t kDefaultCapacity = 4096;

  explicit OutboundQueue(size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  // Queue a reply or lifecycle event (always accepted until close()).
  void send(hvmm::supervisor::v1::ToDaemon message);
  // Queue a notifier event or a fault; false (and counted) when `capacity` events wait.
  bool offer_notifier(hvmm::v1::NotifierEvent event);
  bool offer_fault(hvmm::v1::Fault fault);
  // The next message to write: a reply, else the oldest event (or drop report). Waits while
  // there is nothing; nullopt once the queue is closed and empty.
  std::optional<hvmm::supervisor::v1::ToDaemon> take();
  // The same without waiting: nullopt when nothing is queued.
  std::optional<hvmm::supervisor::v1::ToDaemon> try_take();
  // No more messages are accepted; take() drains what is queued, then returns nullopt.
  void close();

  OutboundStats stats() const;
  size_t events_waiting() const;

 private:
  bool offer(hvmm::supervisor::v1::ToDaemon message, bool notifier);
  std::optional<hvmm::supervisor::v1::ToDaemon> take_locked();

  const size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<hvmm::supervisor::v1::ToDaemon> replies_;
  // Events and drop reports; at most `capacity_` events (reports come on top, one a gap).
  std::deque<hvmm::supervisor::v1::ToDaemon> events_;
  size_t event_count_ = 0;
  OutboundStats stats_;
  bool closed_ = false;
};

}  // namespace hvmm::daemon::vmproc
