// Tests of the Console's log: the --console-log-max cap (drop and count past it), no cap,
// and a full FIFO that drops instead of blocking. No KVM needed.
#include "hvmm/vmm/devices/serial/console.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace hvmm::vmm {
namespace {

// A temp file opened as --console-log, removed with the object.
struct TempLog {
  TempLog() : path(fmt::format("/tmp/hvmm-console-test-{}-{}", ::getpid(), counter++)) {
    auto opened = open_log_file(path, "console_log", LogOpenMode::kTruncate);
    EXPECT_TRUE(opened.ok()) << opened.error().message;
    log = std::move(*opened);
  }
  ~TempLog() { std::remove(path.c_str()); }
  std::string contents() const {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }
  static inline int counter = 0;
  std::string path;
  std::optional<LogFile> log;
};

// Where the console's "stdout" goes in these tests.
struct NullOutput {
  NullOutput() : fd(::open("/dev/null", O_WRONLY | O_CLOEXEC)) {}
  UniqueFd fd;
};

// Feed `text` to the console byte by byte, as the UART does.
void print(Console& console, const std::string& text) {
  for (char c : text) {
    console.output(static_cast<uint8_t>(c));
  }
}

// Past the cap, bytes are left out of the log and counted; the report says how many.
TEST(Console, CapsLogAndCountsDropped) {
  TempLog temp;
  NullOutput out;
  Console console(std::move(temp.log), 10, false, out.fd.get());
  print(console, "0123456789abcdefghijklmno");
  EXPECT_EQ(temp.contents(), "0123456789");
  EXPECT_EQ(console.log_written(), 10u);
  EXPECT_EQ(console.dropped_over_cap(), 15u);
  EXPECT_EQ(console.dropped_unwritable(), 0u);
  EXPECT_EQ(console.drop_report(),
            fmt::format("hvmm: console log '{}': 15 bytes of console output dropped after the "
                        "log reached its cap of 10 bytes\n",
                        temp.path));
}

// A cap of 0 means no cap: everything is logged and nothing reported.
TEST(Console, ZeroCapLogsEverything) {
  TempLog temp;
  NullOutput out;
  Console console(std::move(temp.log), 0, false, out.fd.get());
  std::string text(100000, 'z');
  print(console, text);
  EXPECT_EQ(temp.contents(), text);
  EXPECT_EQ(console.dropped_over_cap(), 0u);
  EXPECT_EQ(console.drop_report(), "");
}

// The guest's output still reaches "stdout" in full once the log is capped.
TEST(Console, StdoutIsNeverCapped) {
  TempLog temp;
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  {
    Console console(std::move(temp.log), 3, false, write_end.get());
    print(console, "hello world");
  }
  write_end.reset();
  char buffer[64] = {};
  ssize_t n = ::read(read_end.get(), buffer, sizeof(buffer));
  EXPECT_EQ(std::string(buffer, static_cast<size_t>(n > 0 ? n : 0)), "hello world");
  EXPECT_EQ(temp.contents(), "hel");
}

// A FIFO log whose reader does not read fills up; the rest is dropped and counted, and the
// console never blocks.
TEST(Console, FullFifoLogDropsAndCounts) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  UniqueFd reader(fds[0]);
  ASSERT_GT(::fcntl(fds[1], F_SETPIPE_SZ, 4096), 0);
  NullOutput out;
  Console console(LogFile{UniqueFd(fds[1]), LogFileKind::kFifo, "fifo", "console_log"}, 0, false,
                  out.fd.get());
  print(console, std::string(10000, 'q'));
  EXPECT_EQ(console.log_written(), 4096u);
  EXPECT_EQ(console.dropped_unwritable(), 10000u - 4096u);
  EXPECT_NE(console.drop_report().find("5904 bytes of console output dropped because the FIFO "
                                       "or terminal was full"),
            std::string::npos)
      << console.drop_report();
}

}  // namespace
}  // namespace hvmm::vmm
