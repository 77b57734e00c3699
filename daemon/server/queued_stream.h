// QueuedStream: a server-streaming RPC fed through a bounded queue, so that no producer (the
// event loop relaying a VM's events) ever waits for a client.
//
// The producer calls push() from any thread; one message at a time is written to the client
// (gRPC's callback API: StartWrite, OnWriteDone). When `capacity` messages are queued and the
// client has not taken them, the next push() overflows, by the stream's policy:
// - kDropClient (WatchNotifier): the stream ends with RESOURCE_EXHAUSTED naming the buffer;
//   what was queued is discarded, the overflow is counted.
// - kDropMessages (StreamConsole, WatchFaults): the message is discarded and counted, and the
//   next message written carries the count (mark_dropped, e.g. ConsoleLine.dropped_before).
// A client that cancels or disconnects ends the stream the same way, at once. Either way
// `on_closed` runs once (on whichever thread decided), so the owner can unregister.
//
// Lifetime: gRPC owns the reactor until OnDone (it deletes itself there: the callback API's
// contract); producers hold the shared State, which outlives it and turns pushes into no-ops.
// Finish is called exactly once, never while a write is outstanding, and the reactor is not
// touched after it.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace hvmm::daemon {

enum class OverflowPolicy { kDropClient, kDropMessages };

enum class PushResult {
  kQueued,
  kDropped,     // kDropMessages: this message was discarded and counted
  kOverflowed,  // kDropClient: this push ended the stream
  kClosed,      // the stream has ended (client gone, overflowed or finished)
};

template <typename Msg>
class QueuedStream {
 public:
  struct Options {
    size_t capacity = 4096;
    OverflowPolicy policy = OverflowPolicy::kDropMessages;
    std::string buffer_name = "buffer";                // for the RESOURCE_EXHAUSTED message
    std::function<void(Msg&, uint64_t)> mark_dropped;  // kDropMessages
    std::function<void()> on_closed;
  };

  class State;
  class Reactor;

  // A reactor for gRPC to run, and the state producers push to.
  struct Started {
    Reactor* reactor;
    std::shared_ptr<State> state;
  };
  static Started start(Options options) {
    auto state = std::make_shared<State>(std::move(options));
    // gRPC's callback API takes a raw pointer and the reactor deletes itself in OnDone.
    auto* reactor = new Reactor(state);
    state->reactor_ = reactor;
    return {reactor, state};
  }

  class State {
   public:
    explicit State(Options options) : options_(std::move(options)) {}

    PushResult push(Msg message) {
      std::unique_lock lock(mutex_);
      if (finish_wanted_) {
        return PushResult::kClosed;
      }
      if (queue_.size() >= options_.capacity) {
        ++overflows_;
        if (options_.policy == OverflowPolicy::kDropMessages) {
          ++dropped_pending_;
          return PushResult::kDropped;
        }
        queue_.clear();
        request_finish(lock,
                       grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, overflow_message()));
        return PushResult::kOverflowed;
      }
      if (dropped_pending_ != 0 && options_.mark_dropped) {
        options_.mark_dropped(message, dropped_pending_);
        dropped_pending_ = 0;
      }
      queue_.push_back(std::move(message));
      write_next(lock);
      return PushResult::kQueued;
    }

    // End the stream with `status` once the queued messages are written.
    void finish(grpc::Status status) {
      std::unique_lock lock(mutex_);
      if (!finish_wanted_) {
        request_finish(lock, std::move(status));
      }
    }
    // End the stream with `status` now, discarding what is queued.
    void abort(grpc::Status status) {
      std::unique_lock lock(mutex_);
      queue_.clear();
      if (!finish_wanted_) {
        request_finish(lock, std::move(status));
      }
    }

    bool closed() const {
      std::lock_guard lock(mutex_);
      return finish_wanted_;
    }
    uint64_t sent() const {
      std::lock_guard lock(mutex_);
      return sent_;
    }
    uint64_t overflows() const {
      std::lock_guard lock(mutex_);
      return overflows_;
    }
    size_t capacity() const { return options_.capacity; }

   private:
    friend class Reactor;
    friend class QueuedStream;

    std::string overflow_message() const {
      return options_.buffer_name + ": the client fell " + std::to_string(options_.capacity) +
             " messages behind and was dropped (read faster or ask for a larger " +
             options_.buffer_name + ")";
    }

    // Called with the lock held; releases it before calling into gRPC or the owner.
    void request_finish(std::unique_lock<std::mutex>& lock, grpc::Status status) {
      finish_wanted_ = true;
      status_ = std::move(status);
      auto on_closed = std::move(options_.on_closed);
      options_.on_closed = nullptr;
      bool finish_now = !writing_ && queue_.empty() && !finish_called_;
      if (finish_now) {
        finish_called_ = true;
      }
      lock.unlock();
      if (finish_now) {
        reactor_->Finish(status_);
      }
      if (on_closed) {
        on_closed();
      }
    }

    // Start the next write, or the Finish that waited for the writes (lock held, released).
    void write_next(std::unique_lock<std::mutex>& lock) {
      if (writing_ || finish_called_) {
        return;
      }
      if (queue_.empty()) {
        if (finish_wanted_) {
          finish_called_ = true;
          lock.unlock();
          reactor_->Finish(status_);
        }
        return;
      }
      writing_ = true;
      in_flight_ = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      reactor_->StartWrite(&in_flight_);
    }

    void write_done(bool ok) {
      std::unique_lock lock(mutex_);
      writing_ = false;
      if (ok) {
        ++sent_;
      } else {
        queue_.clear();  // the client is gone: nothing more will be written
        if (!finish_wanted_) {
          request_finish(lock, grpc::Status(grpc::StatusCode::CANCELLED, "client gone"));
          return;
        }
      }
      write_next(lock);
    }

    void cancelled() { abort(grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled")); }

    Options options_;
    mutable std::mutex mutex_;
    std::deque<Msg> queue_;
    Msg in_flight_;
    bool writing_ = false;
    bool finish_wanted_ = false;
    bool finish_called_ = false;
    grpc::Status status_;
    uint64_t sent_ = 0;
    uint64_t overflows_ = 0;
    uint64_t dropped_pending_ = 0;
    Reactor* reactor_ = nullptr;
  };

  class Reactor : public grpc::ServerWriteReactor<Msg> {
   public:
    explicit Reactor(std::shared_ptr<State> state) : state_(std::move(state)) {}
    void OnWriteDone(bool ok) override { state_->write_done(ok); }
    void OnCancel() override { state_->cancelled(); }
    void OnDone() override { delete this; }

   private:
    std::shared_ptr<State> state_;
  };
};

}  // namespace hvmm::daemon
