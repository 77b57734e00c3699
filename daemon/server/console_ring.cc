// Console lines (console_ring.h).
#include "hvmm/daemon/server/console_ring.h"

namespace hvmm::daemon {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// The length of the valid UTF-8 sequence at `text`, or 0 when it is not one (overlong forms,
// surrogates and code points above U+10FFFF are invalid).
size_t utf8_sequence(std::string_view text) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(0);
  if (lead < 0x80) {
    return 1;
  }
  size_t length = 0;
  uint32_t min = 0;
  uint32_t code = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, min = 0x80, code = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, min = 0x800, code = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, min = 0x10000, code = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() < length) {
    return 0;
  }
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) {
      return 0;
    }
    code = (code << 6) | (byte(i) & 0x3F);
  }
  if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
    return 0;
  }
  return length;
}

}  // namespace

std::string sanitize_utf8(std::string_view bytes) {
  std::string clean;
  clean.reserve(bytes.size());
  while (!bytes.empty()) {
    size_t length = utf8_sequence(bytes);
    if (length == 0) {
      clean += kReplacement;
      bytes.remove_prefix(1);
    } else {
      clean += bytes.substr(0, length);
      bytes.remove_prefix(length);
    }
  }
  return clean;
}

void LineSplitter::emit(const std::function<void(std::string)>& line) {
  if (!partial_.empty() && partial_.back() == '\r') {
    partial_.pop_back();
  }
  line(sanitize_utf8(partial_));
  partial_.clear();
}

void LineSplitter::feed(std::string_view bytes, const std::function<void(std::string)>& line) {
  while (!bytes.empty()) {
    size_t newline = bytes.find('\n');
    std::string_view piece = bytes.substr(0, newline);
    size_t room = kMaxConsoleLine - partial_.size();
    if (piece.size() > room) {
      // A line too long to keep whole: cut it where the limit falls.
      partial_.append(piece.substr(0, room));
      bytes.remove_prefix(room);
      emit(line);
      continue;
    }
    partial_.append(piece);
    if (newline == std::string_view::npos) {
      return;
    }
    bytes.remove_prefix(newline + 1);
    emit(line);
  }
}

void LineSplitter::finish(const std::function<void(std::string)>& line) {
  if (!partial_.empty()) {
    emit(line);
  }
}

void ConsoleRing::add(ConsoleEntry entry) {
  lines_.push_back(std::move(entry));
  while (lines_.size() > kConsoleHistory) {
    lines_.pop_front();
  }
}

std::vector<std::string> ConsoleRing::last(size_t count) const {
  std::vector<std::string> result;
  size_t first = lines_.size() > count ? lines_.size() - count : 0;
  for (size_t i = first; i < lines_.size(); ++i) {
    result.push_back(lines_[i].line);
  }
  return result;
}

}  // namespace hvmm::daemon
