// A test harness that plays hvmmd's side of channel.proto against the real `hvmm-vm` binary:
// it starts the process with one end of a socketpair as --channel-fd and its stdout/stderr in
// a file, sends ToVm frames, and reads ToDaemon frames with timeouts (responses by id, events
// kept in arrival order). Header-only; the VmProcess integration tests use it.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "child_process.h"
#include "hvmm/base/result.h"
#include "hvmm/daemon/channel/frame.h"
#include "hvmm/supervisor/v1/channel.pb.h"

namespace hvmm::testing {

namespace supervisor = hvmm::supervisor::v1;
using Millis = std::chrono::milliseconds;

// How a VM process ended.
struct VmProcessExit {
  bool exited = false;  // false: still running when the wait gave up (then killed)
  int status = -1;      // exit status, when it exited
  int signal = 0;       // the signal that killed it, when one did
};

class VmProcessHarness {
 public:
  // `wrapper` runs before the binary (e.g. {"/usr/bin/strace", "-f", "-o", FILE, "--"}).
  explicit VmProcessHarness(std::vector<std::string> extra_args = {},
                            std::vector<std::string> wrapper = {})
      : wrapped_(!wrapper.empty()) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      return;
    }
    channel_ = fds[0];
    std::vector<std::string> argv = wrapper;
    argv.push_back(HVMM_VM_BINARY);
    argv.push_back("--channel-fd");
    argv.push_back("3");
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    process_.emplace(std::move(argv), /*merge_stderr=*/true, /*fd3=*/fds[1]);
    ::close(fds[1]);
  }
  ~VmProcessHarness() {
    process_.reset();  // kills an unreaped process
    close_channel();
  }
  VmProcessHarness(const VmProcessHarness&) = delete;
  VmProcessHarness& operator=(const VmProcessHarness&) = delete;

  // The child's pid: the VM process's, unless a wrapper runs it.
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  bool wrapped() const { return wrapped_; }
  bool started() const { return pid() > 0 && channel_ >= 0; }
  // What the process printed so far (console and VMM messages).
  std::string output() const { return process_ ? process_->stdout_so_far() : ""; }

  // Send one ToVm frame.
  Result<void> send(const supervisor::ToVm& message) {
    std::string payload;
    message.SerializeToString(&payload);
    return daemon::write_frame(channel_, payload);
  }
  Result<void> launch(const supervisor::Launch& launch) {
    supervisor::ToVm message;
    *message.mutable_launch() = launch;
    return send(message);
  }
  // Send `request` with a fresh id and wait for its response (other messages are kept).
  Result<supervisor::Response> call(supervisor::Request request, Millis timeout) {
    request.set_id(next_id_++);
    supervisor::ToVm message;
    *message.mutable_request() = request;
    HVMM_TRY(send(message));
    return response(request.id(), timeout);
  }
  // Send `request` with a fresh id without waiting; returns the id.
  Result<uint64_t> send_request(supervisor::Request request) {
    request.set_id(next_id_++);
    supervisor::ToVm message;
    *message.mutable_request() = request;
    HVMM_TRY(send(message));
    return request.id();
  }
  // The response to request `id`, reading until it comes.
  Result<supervisor::Response> response(uint64_t id, Millis timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (auto it = responses_.find(id); it != responses_.end()) {
        supervisor::Response found = std::move(it->second);
        responses_.erase(it);
        return found;
      }
      HVMM_TRY(read_one(deadline, "the response to request " + std::to_string(id)));
    }
  }
  // The first event (after `from`, an index into events()) that `match` accepts.
  Result<supervisor::Event> wait_event(const std::function<bool(const supervisor::Event&)>& match,
                                       Millis timeout, size_t from = 0) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (size_t next = from;;) {
      for (; next < events_.size(); ++next) {
        if (match(events_[next])) {
          return events_[next];
        }
      }
      HVMM_TRY(read_one(deadline, "an event"));
    }
  }
  // Every event received so far, in order.
  const std::vector<supervisor::Event>& events() const { return events_; }
  // Read whatever arrives within `timeout` (events and responses are kept); stops at EOF.
  void drain(Millis timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!eof_ && read_one(deadline, "").ok()) {
    }
  }
  bool channel_ended() const { return eof_; }

  // Wait for the process to end (killing it after `timeout`).
  VmProcessExit wait_exit(Millis timeout) {
    if (!process_ || process_->reaped()) {
      return {};
    }
    const RunResult run = process_->wait(timeout);
    if (run.timed_out) {
      return {};
    }
    return {run.signal == 0, run.signal == 0 ? run.status : -1, run.signal};
  }
  // Close our end: the VM process sees its daemon go away.
  void close_channel() {
    if (channel_ >= 0) {
      ::close(channel_);
      channel_ = -1;
    }
  }

 private:
  // Read one message before `deadline` and file it; an error names `waiting_for`.
  Result<void> read_one(std::chrono::steady_clock::time_point deadline,
                        const std::string& waiting_for) {
    while (true) {
      auto frame = decoder_.next();
      HVMM_TRY(frame);
      if (*frame) {
        supervisor::ToDaemon message;
        if (!message.ParseFromString(**frame)) {
          return make_error(ErrorCode::kDataLoss, "a frame from the VM process does not parse");
        }
        if (message.has_response()) {
          responses_[message.response().id()] = message.response();
        } else if (message.has_event()) {
          events_.push_back(message.event());
        }
        return Ok();
      }
      if (eof_ || channel_ < 0) {
        return make_error(ErrorCode::kUnavailable, "the channel ended while waiting for {}",
                          waiting_for);
      }
      const auto left =
          std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return make_error(ErrorCode::kUnavailable, "timed out waiting for {}", waiting_for);
      }
      pollfd fd{channel_, POLLIN, 0};
      if (::poll(&fd, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000))) <= 0) {
        continue;
      }
      char buffer[65536];
      const ssize_t n = ::recv(channel_, buffer, sizeof(buffer), 0);
      if (n <= 0) {
        eof_ = true;
        continue;
      }
      decoder_.feed(std::string_view(buffer, static_cast<size_t>(n)));
    }
  }

  std::optional<ChildProcess> process_;
  bool wrapped_ = false;
  int channel_ = -1;
  bool eof_ = false;
  uint64_t next_id_ = 1;
  daemon::FrameDecoder decoder_;
  std::map<uint64_t, supervisor::Response> responses_;
  std::vector<supervisor::Event> events_;
};

}  // namespace hvmm::testing
