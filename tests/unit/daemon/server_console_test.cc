// Console lines as the daemon keeps them: UTF-8 sanitizing and line splitting against models.
#include <gtest/gtest.h>

#include <random>

#include "hvmm/daemon/server/console_ring.h"

namespace hvmm::daemon {
namespace {

// The UTF-8 encoding of code point `code` (a model encoder).
std::string encode(uint32_t code) {
  std::string out;
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
  return out;
}

// Valid text passes unchanged; known invalid sequences become U+FFFD per bad byte; anything
// comes out stable (sanitizing twice changes nothing).
TEST(ServerConsole, Utf8) {
  std::mt19937 random(3);
  for (int i = 0; i < 2000; ++i) {
    std::string text;
    for (int j = random() % 40; j > 0; --j) {
      uint32_t code = random() % 0x110000;
      if (code >= 0xD800 && code <= 0xDFFF) {
        continue;
      }
      text += encode(code);
    }
    ASSERT_EQ(sanitize_utf8(text), text);
  }
  const std::string bad = "\xEF\xBF\xBD";
  EXPECT_EQ(sanitize_utf8("a\xff"
                          "b"),
            "a" + bad + "b");
  EXPECT_EQ(sanitize_utf8("\xC0\x80"), bad + bad) << "overlong NUL";
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), bad + bad + bad) << "a surrogate";
  EXPECT_EQ(sanitize_utf8("\xF4\x90\x80\x80"), bad + bad + bad + bad) << "above U+10FFFF";
  EXPECT_EQ(sanitize_utf8("\xE2\x82"), bad + bad) << "cut short";
  for (int i = 0; i < 2000; ++i) {
    std::string bytes(random() % 30, '\0');
    for (char& c : bytes) {
      c = static_cast<char>(random());
    }
    std::string once = sanitize_utf8(bytes);
    ASSERT_EQ(sanitize_utf8(once), once);
  }
}

// Lines from randomly chunked input equal the model's: split at '\n', '\r' dropped at the end,
// cut every kMaxConsoleLine bytes.
TEST(ServerConsole, LinesFromRandomChunks) {
  std::mt19937 random(5);
  for (int round = 0; round < 300; ++round) {
    std::string text;
    for (int i = random() % 20; i > 0; --i) {
      size_t length = random() % 3 == 0 ? random() % 9000 : random() % 20;
      text += std::string(length, static_cast<char>('a' + random() % 26));
      if (random() % 4 == 0) {
        text += '\r';
      }
      text += '\n';
    }
    if (random() % 2 == 0) {
      text += "tail";
    }
    std::vector<std::string> model;
    std::string current;
    auto flush = [&] {
      if (!current.empty() && current.back() == '\r') {
        current.pop_back();
      }
      model.push_back(current);
      current.clear();
    };
    for (char c : text) {
      if (c == '\n') {
        flush();
        continue;
      }
      if (current.size() == kMaxConsoleLine) {
        flush();
      }
      current += c;
    }
    if (!current.empty()) {
      flush();
    }
    std::vector<std::string> lines;
    LineSplitter splitter;
    auto sink = [&](std::string line) { lines.push_back(std::move(line)); };
    for (size_t at = 0; at < text.size();) {
      size_t chunk = 1 + random() % 5000;
      splitter.feed(std::string_view(text).substr(at, chunk), sink);
      at += chunk;
    }
    splitter.finish(sink);
    ASSERT_EQ(lines, model) << "round " << round;
  }
}

// The ring keeps the last kConsoleHistory lines; last(n) gives the newest n, oldest first.
TEST(ServerConsole, Ring) {
  ConsoleRing ring;
  for (size_t i = 0; i < kConsoleHistory + 50; ++i) {
    ring.add({i, std::to_string(i)});
  }
  ASSERT_EQ(ring.lines().size(), kConsoleHistory);
  EXPECT_EQ(ring.lines().front().line, "50");
  auto last = ring.last(kExitConsoleLines);
  ASSERT_EQ(last.size(), kExitConsoleLines);
  EXPECT_EQ(last.back(), std::to_string(kConsoleHistory + 49));
  EXPECT_EQ(last.front(), std::to_string(kConsoleHistory + 50 - kExitConsoleLines));
}

}  // namespace
}  // namespace hvmm::daemon
