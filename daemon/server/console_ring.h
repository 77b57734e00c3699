// A VM's console as the daemon keeps it: the VM process's stdout and stderr cut into lines,
// the last kConsoleHistory of them kept for StreamConsole's history and VmExit.
//
// The bytes come from the guest (its serial console) and from the VMM: untrusted. A line is
// cut at kMaxConsoleLine bytes, a trailing '\r' is dropped, and bytes that are not UTF-8 are
// replaced by U+FFFD (protobuf strings must be UTF-8).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace hvmm::daemon {

inline constexpr size_t kConsoleHistory = 1000;
inline constexpr size_t kMaxConsoleLine = 4096;
inline constexpr size_t kExitConsoleLines = 20;

// `bytes` with every invalid UTF-8 sequence replaced by U+FFFD.
std::string sanitize_utf8(std::string_view bytes);

// LineSplitter turns a byte stream into lines.
class LineSplitter {
 public:
  // Append bytes; call `line` for every line they complete.
  void feed(std::string_view bytes, const std::function<void(std::string)>& line);
  // The unterminated rest at end of stream, as a last line (if any).
  void finish(const std::function<void(std::string)>& line);

 private:
  void emit(const std::function<void(std::string)>& line);
  std::string partial_;
};

struct ConsoleEntry {
  uint64_t time_unix_ns = 0;
  std::string line;
};

// ConsoleRing keeps the last kConsoleHistory lines.
class ConsoleRing {
 public:
  void add(ConsoleEntry entry);
  const std::deque<ConsoleEntry>& lines() const { return lines_; }
  // The last `count` lines, oldest first.
  std::vector<std::string> last(size_t count) const;
  void clear() { lines_.clear(); }

 private:
  std::deque<ConsoleEntry> lines_;
};

}  // namespace hvmm::daemon
