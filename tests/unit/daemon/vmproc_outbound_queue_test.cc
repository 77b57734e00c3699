// The VM process's outgoing messages: replies before events, a full event queue drops and
// counts without blocking, each gap is reported once where it happened, close drains; and
// the writer thread puts them on a socket as frames while a stalled reader only stalls it.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "hvmm/daemon/channel/frame.h"
#include "hvmm/daemon/vmproc/channel_writer.h"
#include "hvmm/daemon/vmproc/outbound_queue.h"

namespace hvmm::daemon::vmproc {
namespace {

using hvmm::supervisor::v1::ToDaemon;

hvmm::v1::NotifierEvent notifier(uint64_t sequence) {
  hvmm::v1::NotifierEvent event;
  event.set_sequence(sequence);
  return event;
}

hvmm::v1::Fault fault(uint64_t ipa) {
  hvmm::v1::Fault record;
  record.set_ipa(ipa);
  return record;
}

ToDaemon response(uint64_t id) {
  ToDaemon message;
  message.mutable_response()->set_id(id);
  return message;
}

// Replies overtake queued events; events keep their order.
TEST(VmprocOutboundQueue, RepliesFirstEventsInOrder) {
  OutboundQueue queue(16);
  ASSERT_TRUE(queue.offer_notifier(notifier(1)));
  ASSERT_TRUE(queue.offer_fault(fault(0x1000)));
  queue.send(response(7));
  auto first = queue.try_take();
  ASSERT_TRUE(first && first->has_response());
  EXPECT_EQ(first->response().id(), 7u);
  auto second = queue.try_take();
  ASSERT_TRUE(second && second->event().has_notifier());
  auto third = queue.try_take();
  ASSERT_TRUE(third && third->event().has_fault());
  EXPECT_FALSE(queue.try_take());
  EXPECT_EQ(queue.stats().notifier_sent, 1u);
  EXPECT_EQ(queue.stats().faults_sent, 1u);
}

// Against a model: random offers and takes; what comes out is the accepted events in order,
// with a Dropped report in each place where offers were refused, its counts those of the
// gap; nothing is lost or invented, and the counters agree.
TEST(VmprocOutboundQueue, OverflowIsCountedWhereItHappened) {
  constexpr size_t kCapacity = 8;
  OutboundQueue queue(kCapacity);
  std::mt19937_64 random(3);
  struct Expected {
    bool dropped;
    uint64_t value;  // sequence / ipa of an event
    uint64_t notifier_drops;
    uint64_t fault_drops;
  };
  std::vector<Expected> model;
  size_t waiting = 0;
  uint64_t next = 1;
  uint64_t total_notifier_drops = 0;
  uint64_t total_fault_drops = 0;
  std::vector<ToDaemon> out;
  for (int step = 0; step < 5000; ++step) {
    if (random() % 3 != 0) {  // offer more than is taken: the queue fills
      const bool is_notifier = random() % 2 == 0;
      const uint64_t value = next++;
      const bool accepted =
          is_notifier ? queue.offer_notifier(notifier(value)) : queue.offer_fault(fault(value));
      EXPECT_EQ(accepted, waiting < kCapacity);
      if (accepted) {
        model.push_back({false, value, 0, 0});
        ++waiting;
      } else {
        if (model.empty() || !model.back().dropped) {
          model.push_back({true, 0, 0, 0});
        }
        ++(is_notifier ? model.back().notifier_drops : model.back().fault_drops);
        ++(is_notifier ? total_notifier_drops : total_fault_drops);
      }
    } else if (auto taken = queue.try_take()) {
      if (!taken->event().has_dropped()) {
        --waiting;
      }
      out.push_back(std::move(*taken));
    }
  }
  while (auto taken = queue.try_take()) {
    out.push_back(std::move(*taken));
  }
  ASSERT_EQ(out.size(), model.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const auto& event = out[i].event();
    if (model[i].dropped) {
      ASSERT_TRUE(event.has_dropped()) << i;
      EXPECT_EQ(event.dropped().notifier_events(), model[i].notifier_drops) << i;
      EXPECT_EQ(event.dropped().faults(), model[i].fault_drops) << i;
    } else {
      const uint64_t value =
          event.has_notifier() ? event.notifier().sequence() : event.fault().ipa();
      EXPECT_EQ(value, model[i].value) << i;
    }
  }
  EXPECT_GT(total_notifier_drops, 0u);
  EXPECT_EQ(queue.stats().notifier_dropped, total_notifier_drops);
  EXPECT_EQ(queue.stats().faults_dropped, total_fault_drops);
}

// take() waits for a message; close() ends it after draining; nothing is accepted after.
TEST(VmprocOutboundQueue, CloseDrainsThenEnds) {
  OutboundQueue queue;
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    queue.send(response(1));
    queue.close();
  });
  auto first = queue.take();
  ASSERT_TRUE(first && first->has_response());
  EXPECT_FALSE(queue.take());
  producer.join();
  queue.send(response(2));
  EXPECT_FALSE(queue.offer_notifier(notifier(1)));
  EXPECT_FALSE(queue.try_take());
}

// Read every frame from `fd` until EOF.
std::vector<ToDaemon> read_all(int fd) {
  FrameReader reader(fd);
  std::vector<ToDaemon> messages;
  while (true) {
    auto frame = reader.read();
    if (!frame.ok() || !*frame) {
      return messages;
    }
    ToDaemon message;
    EXPECT_TRUE(message.ParseFromString(**frame));
    messages.push_back(std::move(message));
  }
}

// A daemon that does not read: offers keep returning (dropping) at once, the writer blocks
// alone; once read, everything accepted arrives in order with the drops reported.
TEST(VmprocChannelWriter, StalledReaderNeverBlocksProducers) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  int small = 4096;
  ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  OutboundQueue queue(64);
  uint64_t accepted = 0;
  {
    ChannelWriter writer(fds[0], queue, nullptr);
    const auto start = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < 100000; ++i) {
      hvmm::v1::NotifierEvent event = notifier(i);
      event.mutable_range()->set_size(uint64_t{1} << 40);  // some bytes per frame
      accepted += queue.offer_notifier(std::move(event)) ? 1 : 0;
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_LT(elapsed, std::chrono::seconds(5)) << "offers must not wait for the reader";
    EXPECT_GT(queue.stats().notifier_dropped, 0u);
    queue.send(response(42));
    std::thread closer([&] {
      writer.finish();
      ::shutdown(fds[0], SHUT_WR);
    });
    const auto messages = read_all(fds[1]);
    closer.join();
    uint64_t events = 0;
    uint64_t dropped = 0;
    uint64_t last = 0;
    bool reply = false;
    for (const auto& message : messages) {
      if (message.has_response()) {
        reply = true;
      } else if (message.event().has_dropped()) {
        dropped += message.event().dropped().notifier_events();
      } else {
        EXPECT_TRUE(events == 0 || message.event().notifier().sequence() > last);
        last = message.event().notifier().sequence();
        ++events;
      }
    }
    EXPECT_TRUE(reply);
    EXPECT_EQ(events, accepted);
    EXPECT_EQ(dropped, 100000 - accepted);
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

// A write to a channel whose other end is gone calls on_broken once; the writer still drains.
TEST(VmprocChannelWriter, BrokenChannelIsReportedOnce) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  ::close(fds[1]);
  OutboundQueue queue;
  int broken = 0;
  {
    ChannelWriter writer(fds[0], queue, [&broken](const Error&) { ++broken; });
    for (uint64_t i = 0; i < 10; ++i) {
      queue.send(response(i));
    }
    writer.finish();
  }
  EXPECT_EQ(broken, 1);
  ::close(fds[0]);
}

}  // namespace
}  // namespace hvmm::daemon::vmproc
