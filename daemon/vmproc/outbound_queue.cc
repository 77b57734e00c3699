// The VM process's outgoing messages (outbound_queue.h).
#include "hvmm/daemon/vmproc/outbound_queue.h"

#include <utility>

namespace hvmm::daemon::vmproc {

using hvmm::supervisor::v1::ToDaemon;

void OutboundQueue::send(ToDaemon message) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) {
      return;
    }
    replies_.push_back(std::move(message));
  }
  ready_.notify_one();
}

bool OutboundQueue::offer_notifier(hvmm::v1::NotifierEvent event) {
  ToDaemon message;
  *message.mutable_event()->mutable_notifier() = std::move(event);
  return offer(std::move(message), true);
}

bool OutboundQueue::offer_fault(hvmm::v1::Fault fault) {
  ToDaemon message;
  *message.mutable_event()->mutable_fault() = std::move(fault);
  return offer(std::move(message), false);
}

// The message was built before the lock: a VM thread holds it only for the push. A drop
// adds to the report at the queue's tail, or starts one there.
bool OutboundQueue::offer(ToDaemon message, bool notifier) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) {
      ++(notifier ? stats_.notifier_dropped : stats_.faults_dropped);
      return false;
    }
    if (event_count_ < capacity_) {
      events_.push_back(std::move(message));
      ++event_count_;
    } else {
      ++(notifier ? stats_.notifier_dropped : stats_.faults_dropped);
      if (events_.empty() || !events_.back().event().has_dropped()) {
        events_.emplace_back().mutable_event()->mutable_dropped();
      }
      auto* dropped = events_.back().mutable_event()->mutable_dropped();
      if (notifier) {
        dropped->set_notifier_events(dropped->notifier_events() + 1);
      } else {
        dropped->set_faults(dropped->faults() + 1);
      }
      return false;
    }
  }
  ready_.notify_one();
  return true;
}

std::optional<ToDaemon> OutboundQueue::take() {
  std::unique_lock lock(mutex_);
  ready_.wait(lock, [this] { return closed_ || !replies_.empty() || !events_.empty(); });
  return take_locked();
}

std::optional<ToDaemon> OutboundQueue::try_take() {
  std::lock_guard lock(mutex_);
  return take_locked();
}

// Replies first, then events and reports in their order.
std::optional<ToDaemon> OutboundQueue::take_locked() {
  std::deque<ToDaemon>& from = !replies_.empty() ? replies_ : events_;
  if (from.empty()) {
    return std::nullopt;
  }
  ToDaemon message = std::move(from.front());
  from.pop_front();
  if (&from == &events_ && !message.event().has_dropped()) {
    --event_count_;
    ++(message.event().has_notifier() ? stats_.notifier_sent : stats_.faults_sent);
  }
  return message;
}

void OutboundQueue::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  ready_.notify_all();
}

OutboundStats OutboundQueue::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

size_t OutboundQueue::events_waiting() const {
  std::lock_guard lock(mutex_);
  return event_count_;
}

}  // namespace hvmm::daemon::vmproc
