// The channel's framing against a simple model: random payloads, split at random points,
// come back whole and in order; malformed lengths fail and stay failed.
#include "hvmm/daemon/channel/frame.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <thread>
#include <vector>

namespace hvmm::daemon {
namespace {

std::string random_payload(std::mt19937_64& rng) {
  // Mostly small, sometimes across the one- and two-byte varint boundaries, sometimes large.
  const size_t sizes[] = {0, 1, 127, 128, 16383, 16384, 70000};
  size_t size = sizes[rng() % std::size(sizes)];
  std::string payload(size, '\0');
  for (auto& c : payload) {
    c = static_cast<char>(rng());
  }
  return payload;
}

TEST(Frame, RandomSplitsRoundTrip) {
  std::mt19937_64 rng(7);
  std::vector<std::string> sent;
  std::string stream;
  for (int i = 0; i < 200; ++i) {
    sent.push_back(random_payload(rng));
    stream += encode_frame(sent.back());
  }
  FrameDecoder decoder;
  std::vector<std::string> received;
  size_t at = 0;
  while (at < stream.size()) {
    const size_t chunk = std::min<size_t>(1 + rng() % 5000, stream.size() - at);
    decoder.feed(std::string_view(stream).substr(at, chunk));
    at += chunk;
    for (;;) {
      auto payload = decoder.next();
      ASSERT_TRUE(payload) << payload.error().message;
      if (!*payload) {
        break;
      }
      received.push_back(std::move(**payload));
    }
  }
  EXPECT_EQ(received, sent);
  EXPECT_EQ(decoder.pending(), 0u);
}

TEST(Frame, OversizedLengthFailsAndStaysFailed) {
  FrameDecoder decoder;
  std::string length;
  uint64_t value = kMaxFrame + 1;
  while (value >= 0x80) {
    length.push_back(static_cast<char>(0x80 | (value & 0x7f)));
    value >>= 7;
  }
  length.push_back(static_cast<char>(value));
  decoder.feed(length);
  auto first = decoder.next();
  ASSERT_FALSE(first);
  EXPECT_NE(first.error().message.find("above the limit"), std::string::npos);
  decoder.feed(encode_frame("ok"));
  EXPECT_FALSE(decoder.next());
}

TEST(Frame, OverlongVarintFails) {
  FrameDecoder decoder;
  decoder.feed(std::string(11, '\x80'));
  auto result = decoder.next();
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("varint"), std::string::npos);
}

TEST(Frame, ReaderSeesFramesThenCleanEnd) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::thread writer([fd = fds[1]] {
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(write_frame(fd, std::string(static_cast<size_t>(i) * 1000, 'a' + i % 26)));
    }
    ::close(fd);
  });
  FrameReader reader(fds[0]);
  for (int i = 0; i < 50; ++i) {
    auto payload = reader.read();
    ASSERT_TRUE(payload) << payload.error().message;
    ASSERT_TRUE(*payload);
    EXPECT_EQ(**payload, std::string(static_cast<size_t>(i) * 1000, 'a' + i % 26));
  }
  auto end = reader.read();
  ASSERT_TRUE(end);
  EXPECT_FALSE(*end);
  writer.join();
  ::close(fds[0]);
}

TEST(Frame, ReaderReportsEndInsideAFrame) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  const std::string frame = encode_frame("truncated payload");
  ASSERT_EQ(::write(fds[1], frame.data(), frame.size() - 3),
            static_cast<ssize_t>(frame.size() - 3));
  ::close(fds[1]);
  FrameReader reader(fds[0]);
  auto result = reader.read();
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("inside a frame"), std::string::npos);
  ::close(fds[0]);
}

// A peer that closes with our frames unread makes the next read fail with ECONNRESET: the
// reader reports the end of the stream, as for a clean close.
TEST(Frame, PeerClosedWithUnreadFramesIsTheEndOfTheStream) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  ASSERT_TRUE(write_frame(fds[0], "never read"));
  ::close(fds[1]);
  FrameReader reader(fds[0]);
  auto result = reader.read();
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_FALSE(result->has_value());
  ::close(fds[0]);
}

TEST(Frame, WriteToAClosedPeerIsAnErrorNotASignal) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  ::close(fds[0]);
  auto result = write_frame(fds[1], "nobody reads this");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kUnavailable) << "a closed peer, not a failure";
  EXPECT_NE(result.error().message.find("the peer closed it"), std::string::npos)
      << result.error().message;
  ::close(fds[1]);
}

}  // namespace
}  // namespace hvmm::daemon
