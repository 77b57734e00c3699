// Varint-delimited frames (frame.h).
#include "hvmm/daemon/channel/frame.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hvmm::daemon {
namespace {

// A varint of a 64-bit value takes at most ten bytes.
constexpr size_t kMaxVarintBytes = 10;

}  // namespace

std::string encode_frame(std::string_view payload) {
  std::string frame;
  frame.reserve(payload.size() + kMaxVarintBytes);
  uint64_t length = payload.size();
  do {
    uint8_t byte = length & 0x7f;
    length >>= 7;
    if (length != 0) {
      byte |= 0x80;
    }
    frame.push_back(static_cast<char>(byte));
  } while (length != 0);
  frame.append(payload);
  return frame;
}

void FrameDecoder::feed(std::span<const uint8_t> bytes) {
  feed(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

void FrameDecoder::feed(std::string_view bytes) {
  // Drop what was consumed before growing, so the buffer stays about one frame long.
  if (consumed_ > 0 && consumed_ >= buffer_.size() / 2) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(bytes);
}

Result<std::optional<std::string>> FrameDecoder::next() {
  if (failed_) {
    return make_error(ErrorCode::kDataLoss, "channel: the stream was already malformed");
  }
  uint64_t length = 0;
  size_t at = consumed_;
  for (unsigned shift = 0;; shift += 7) {
    if (at == buffer_.size()) {
      return std::optional<std::string>();  // the length is not complete yet
    }
    if (at - consumed_ == kMaxVarintBytes) {
      failed_ = true;
      return make_error(ErrorCode::kDataLoss, "channel: frame length is not a valid varint");
    }
    const auto byte = static_cast<uint8_t>(buffer_[at++]);
    if (shift < 64) {
      length |= uint64_t{byte & 0x7fu} << shift;
    }
    if ((byte & 0x80) == 0) {
      break;
    }
  }
  if (length > kMaxFrame) {
    failed_ = true;
    return make_error(ErrorCode::kDataLoss, "channel: frame of {} bytes is above the limit of {}",
                      length, kMaxFrame);
  }
  if (buffer_.size() - at < length) {
    return std::optional<std::string>();  // the payload is not complete yet
  }
  std::string payload = buffer_.substr(at, length);
  consumed_ = at + length;
  return std::optional<std::string>(std::move(payload));
}

Result<void> write_frame(int fd, std::string_view payload) {
  const std::string frame = encode_frame(payload);
  size_t written = 0;
  while (written < frame.size()) {
    const ssize_t n = ::send(fd, frame.data() + written, frame.size() - written, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EPIPE || errno == ECONNRESET) {
        return make_error(ErrorCode::kUnavailable, "channel: the peer closed it ({})",
                          std::strerror(errno));
      }
      return make_error(ErrorCode::kInternal, "channel: write failed: {}", std::strerror(errno));
    }
    written += static_cast<size_t>(n);
  }
  return Ok();
}

Result<std::optional<std::string>> FrameReader::read() {
  char chunk[16384];
  for (;;) {
    auto payload = decoder_.next();
    if (!payload || *payload) {
      return payload;
    }
    ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    // A unix socket whose peer closed with our frames still unread reports ECONNRESET rather
    // than the end of the stream; it is the same end.
    if (n < 0 && errno == ECONNRESET) {
      n = 0;
    }
    if (n < 0) {
      return make_error(ErrorCode::kUnavailable, "channel: read failed: {}", std::strerror(errno));
    }
    if (n == 0) {
      if (decoder_.pending() != 0) {
        return make_error(ErrorCode::kDataLoss,
                          "channel: the stream ended inside a frame ({} bytes pending)",
                          decoder_.pending());
      }
      return std::optional<std::string>();
    }
    decoder_.feed(std::string_view(chunk, static_cast<size_t>(n)));
  }
}

}  // namespace hvmm::daemon
