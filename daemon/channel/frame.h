// Frames of the daemon's local channel to its VM processes: each message is preceded by its
// length as a base-128 varint, protobuf's delimited format (channel.proto). The payload is
// opaque here (the callers parse it), so framing builds and is tested without protobuf.
//
// Both ends treat the other as untrusted: a length above kMaxFrame or a varint longer than
// ten bytes is an error, after which the stream cannot be resynchronized and the channel is
// closed. Nothing is buffered beyond one frame plus one read's worth of bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "hvmm/base/result.h"

namespace hvmm::daemon {

// The largest payload either end accepts: a stage-2 dump page or a kernel image fits.
inline constexpr size_t kMaxFrame = size_t{64} << 20;

// `payload` preceded by its varint length. Payloads above kMaxFrame are the caller's bug.
std::string encode_frame(std::string_view payload);

// FrameDecoder turns a byte stream into payloads.
class FrameDecoder {
 public:
  // Append bytes read from the channel.
  void feed(std::span<const uint8_t> bytes);
  void feed(std::string_view bytes);
  // The next complete payload; nullopt when more bytes are needed; an error (kDataLoss)
  // for an oversized or malformed length, after which the decoder stays failed.
  Result<std::optional<std::string>> next();
  // Bytes fed but not yet returned as a payload (a partial frame at end of stream).
  size_t pending() const { return buffer_.size() - consumed_; }

 private:
  std::string buffer_;
  size_t consumed_ = 0;
  bool failed_ = false;
};

// Write one frame to the stream socket `fd` (blocking; retries EINTR and short writes; no
// SIGPIPE). Thread-safe only when callers serialize writes themselves. A peer that closed its
// end (EPIPE, ECONNRESET) is kUnavailable; any other failure kInternal.
Result<void> write_frame(int fd, std::string_view payload);

// FrameReader reads frames from a blocking stream socket.
class FrameReader {
 public:
  explicit FrameReader(int fd) : fd_(fd) {}
  // The next payload; nullopt at a clean end of stream (between frames); an error for a
  // read error, a malformed length, or an end of stream inside a frame.
  Result<std::optional<std::string>> read();

 private:
  int fd_;
  FrameDecoder decoder_;
};

}  // namespace hvmm::daemon
