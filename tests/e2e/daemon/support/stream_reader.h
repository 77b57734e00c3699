// StreamReader: one server-streaming call (WatchNotifier, WatchFaults, StreamConsole) read on a
// thread of its own into a list the test waits on. Destroying it cancels the call and joins.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace hvmm::e2e {

template <typename Message>
class StreamReader {
 public:
  // `open` starts the call on the given context (a stub's streaming method, bound).
  using Open = std::function<std::unique_ptr<grpc::ClientReader<Message>>(grpc::ClientContext*)>;

  explicit StreamReader(Open open) : thread_([this, open = std::move(open)] { read(open); }) {}
  ~StreamReader() {
    context_.TryCancel();
    thread_.join();
  }
  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;

  // Wait up to `timeout` for a message that satisfies `match`; the first such one.
  std::optional<Message> wait_for(const std::function<bool(const Message&)>& match,
                                  std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    std::optional<Message> found;
    changed_.wait_for(lock, timeout, [&] {
      for (const Message& message : messages_) {
        if (match(message)) {
          found = message;
          return true;
        }
      }
      return ended_.has_value();
    });
    return found;
  }
  // Everything received so far.
  std::vector<Message> messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  // The call's final status once it ended.
  std::optional<grpc::Status> ended() const {
    std::lock_guard lock(mutex_);
    return ended_;
  }

 private:
  void read(const Open& open) {
    auto reader = open(&context_);
    Message message;
    while (reader->Read(&message)) {
      std::lock_guard lock(mutex_);
      messages_.push_back(message);
      changed_.notify_all();
    }
    grpc::Status status = reader->Finish();
    std::lock_guard lock(mutex_);
    ended_ = std::move(status);
    changed_.notify_all();
  }

  grpc::ClientContext context_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Message> messages_;
  std::optional<grpc::Status> ended_;
  std::thread thread_;  // last: it reads into the members above
};

}  // namespace hvmm::e2e
