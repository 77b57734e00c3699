// RequestServer over a socketpair with a stand-in for the VM's handlers (the real ones
// need a Machine; tests/integration/vmm/vm_process_test.cc runs them): a slow request does
// not hold up others, too many waiting requests are refused at once, and the channel's end
// or a malformed frame is reported once, while an end stop() caused is not.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hvmm/daemon/channel/frame.h"
#include "hvmm/daemon/vmproc/request_server.h"

namespace hvmm::daemon::vmproc {
namespace {

using hvmm::supervisor::v1::Request;
using hvmm::supervisor::v1::Response;
using hvmm::supervisor::v1::ToVm;

// The daemon's end of a socketpair and the VM process's.
struct Channel {
  int daemon = -1;
  int vm = -1;
  Channel() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    daemon = fds[0];
    vm = fds[1];
  }
  ~Channel() {
    ::close(daemon);
    ::close(vm);
  }
  void send(uint64_t id, bool slow) {
    ToVm message;
    message.mutable_request()->set_id(id);
    if (slow) {
      message.mutable_request()->mutable_set_balloon_target();
    } else {
      message.mutable_request()->mutable_get_memory_stats();
    }
    std::string payload;
    message.SerializeToString(&payload);
    ASSERT_TRUE(write_frame(daemon, payload).ok());
  }
};

// Handlers that answer at once, except "slow" ones, which wait until released.
struct Handlers {
  std::mutex mutex;
  std::condition_variable changed;
  bool released = false;
  std::atomic<int> slow_running{0};
  Response serve(const Request& request) {
    if (request.has_set_balloon_target()) {
      ++slow_running;
      std::unique_lock lock(mutex);
      changed.wait(lock, [this] { return released; });
    }
    Response response;
    response.set_id(request.id());
    return response;
  }
  void release() {
    std::lock_guard lock(mutex);
    released = true;
    changed.notify_all();
  }
};

// The ids of the next `n` responses taken from `queue`.
std::vector<uint64_t> take_responses(OutboundQueue& queue, size_t n) {
  std::vector<uint64_t> ids;
  while (ids.size() < n) {
    auto message = queue.take();
    if (!message) {
      break;
    }
    ids.push_back(message->response().id());
  }
  return ids;
}

// With a slow request in a worker, the fast ones after it are answered first.
TEST(VmprocRequestServer, SlowRequestDoesNotHoldUpOthers) {
  Channel channel;
  OutboundQueue queue;
  Handlers handlers;
  RequestServer server(
      FrameReader(channel.vm), queue, [&](const Request& r) { return handlers.serve(r); }, nullptr);
  channel.send(1, /*slow=*/true);
  for (uint64_t id = 2; id <= 10; ++id) {
    channel.send(id, false);
  }
  const auto fast = take_responses(queue, 9);
  EXPECT_EQ(fast.size(), 9u);
  EXPECT_EQ(std::count(fast.begin(), fast.end(), 1u), 0) << "the slow one is still running";
  handlers.release();
  EXPECT_EQ(take_responses(queue, 1), std::vector<uint64_t>{1});
  ::shutdown(channel.vm, SHUT_RD);
  server.stop();
}

// One worker busy and max_pending waiting: the next requests get RESOURCE_EXHAUSTED at once.
TEST(VmprocRequestServer, TooManyWaitingAreRefused) {
  Channel channel;
  OutboundQueue queue;
  Handlers handlers;
  RequestServer server(
      FrameReader(channel.vm), queue, [&](const Request& r) { return handlers.serve(r); }, nullptr,
      /*workers=*/1, /*max_pending=*/2);
  channel.send(1, true);
  while (handlers.slow_running.load() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (uint64_t id = 2; id <= 5; ++id) {
    channel.send(id, true);
  }
  for (uint64_t want : {4u, 5u}) {
    auto message = queue.take();
    ASSERT_TRUE(message && message->has_response());
    EXPECT_EQ(message->response().id(), want);
    EXPECT_EQ(message->response().code(), 8);  // RESOURCE_EXHAUSTED
    EXPECT_NE(message->response().message().find("requests are waiting"), std::string::npos);
  }
  handlers.release();
  auto rest = take_responses(queue, 3);
  std::sort(rest.begin(), rest.end());
  EXPECT_EQ(rest, (std::vector<uint64_t>{1, 2, 3}));
  ::shutdown(channel.vm, SHUT_RD);
  server.stop();
}

// Waits for the channel-end callback and keeps what it was told.
struct EndSeen {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> reasons;
  void add(const std::string& why) {
    std::lock_guard lock(mutex);
    reasons.push_back(why);
    changed.notify_all();
  }
  bool wait() {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, std::chrono::seconds(10), [this] { return !reasons.empty(); });
  }
};

// The daemon closing its end is reported once, as the daemon closing the channel.
TEST(VmprocRequestServer, DaemonClosingIsReported) {
  Channel channel;
  OutboundQueue queue;
  EndSeen end;
  RequestServer server(
      FrameReader(channel.vm), queue,
      [](const Request& r) {
        Response response;
        response.set_id(r.id());
        return response;
      },
      [&end](const std::string& why) { end.add(why); });
  ::shutdown(channel.daemon, SHUT_WR);
  ASSERT_TRUE(end.wait());
  server.stop();
  EXPECT_EQ(end.reasons, std::vector<std::string>{"the daemon closed the channel"});
}

// A frame that is not a ToVm ends the channel, saying so; nothing after it is served.
TEST(VmprocRequestServer, MalformedFrameEndsTheChannel) {
  Channel channel;
  OutboundQueue queue;
  EndSeen end;
  std::atomic<int> served{0};
  RequestServer server(
      FrameReader(channel.vm), queue,
      [&served](const Request& r) {
        ++served;
        Response response;
        response.set_id(r.id());
        return response;
      },
      [&end](const std::string& why) { end.add(why); });
  ASSERT_TRUE(write_frame(channel.daemon, std::string("\xff\xff\xff", 3)).ok());
  channel.send(1, false);
  ASSERT_TRUE(end.wait());
  server.stop();
  EXPECT_EQ(end.reasons.size(), 1u);
  EXPECT_NE(end.reasons[0].find("not a ToVm"), std::string::npos) << end.reasons[0];
  EXPECT_EQ(served.load(), 0);
}

// An end caused by stop() (the VM ended: the read side is shut) is not reported.
TEST(VmprocRequestServer, StopIsNotAChannelEnd) {
  Channel channel;
  OutboundQueue queue;
  EndSeen end;
  RequestServer server(
      FrameReader(channel.vm), queue,
      [](const Request& r) {
        Response response;
        response.set_id(r.id());
        return response;
      },
      [&end](const std::string& why) { end.add(why); });
  std::thread stopper([&] { server.stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::shutdown(channel.vm, SHUT_RD);
  stopper.join();
  EXPECT_TRUE(end.reasons.empty());
}

}  // namespace
}  // namespace hvmm::daemon::vmproc
