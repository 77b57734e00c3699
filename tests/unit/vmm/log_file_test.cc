// Tests of the log destinations (--console-log, --fault-log): what is accepted, what is
// refused without blocking or opening it, and how a full FIFO is written.
#include "hvmm/vmm/host/log_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "test_support.h"

namespace hvmm::vmm {
namespace {

using testing::run_with_timeout;

// A unique path in the temp directory, removed with the object.
struct TempName {
  explicit TempName(const char* tag)
      : path(fmt::format("/tmp/hvmm-log-file-{}-{}", ::getpid(), tag)) {
    std::remove(path.c_str());
  }
  ~TempName() { std::remove(path.c_str()); }
  std::string path;
};

// The message of opening `path` as --console-log, "" on success.
std::string open_error(const std::string& path) {
  auto log = open_log_file(path, "console_log", LogOpenMode::kTruncate);
  return log ? "" : log.error().message;
}

// Whole contents of a file.
std::string contents(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// A missing regular file is created; truncate mode empties an existing one, append keeps it.
TEST(LogFile, RegularFileTruncatedOrAppended) {
  TempName name("regular");
  std::ofstream(name.path) << "old\n";
  {
    auto log = open_log_file(name.path, "fault_log", LogOpenMode::kAppend);
    ASSERT_TRUE(log.ok()) << log.error().message;
    EXPECT_EQ(log->kind, LogFileKind::kRegular);
    EXPECT_EQ(::fcntl(log->fd.get(), F_GETFL) & O_NONBLOCK, 0);
    std::string text = "new\n";
    EXPECT_EQ(write_log(*log, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}), 4u);
  }
  EXPECT_EQ(contents(name.path), "old\nnew\n");
  auto log = open_log_file(name.path, "console_log", LogOpenMode::kTruncate);
  ASSERT_TRUE(log.ok()) << log.error().message;
  EXPECT_EQ(contents(name.path), "");
}

// A FIFO with no reader is refused at once, naming the field, the path and the reason.
TEST(LogFile, FifoWithoutReaderRefusedAtOnce) {
  TempName name("fifo-no-reader");
  ASSERT_EQ(::mkfifo(name.path.c_str(), 0600), 0);
  std::string expected = fmt::format(
      "console_log: '{}' is a FIFO with no reader: start its reader first (hvmm does not wait "
      "for one)",
      name.path);
  int code = run_with_timeout([&] { return open_error(name.path) == expected ? 0 : 1; });
  EXPECT_EQ(code, 0) << (code < 0 ? "open_log_file hung on a FIFO" : open_error(name.path));
}

// A FIFO with a reader is accepted and stays non-blocking: when full, writes take what fits
// and return instead of waiting.
TEST(LogFile, FifoWithReaderIsNonBlocking) {
  TempName name("fifo-reader");
  ASSERT_EQ(::mkfifo(name.path.c_str(), 0600), 0);
  UniqueFd reader(::open(name.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(reader.valid());
  auto log = open_log_file(name.path, "console_log", LogOpenMode::kTruncate);
  ASSERT_TRUE(log.ok()) << log.error().message;
  EXPECT_EQ(log->kind, LogFileKind::kFifo);
  EXPECT_NE(::fcntl(log->fd.get(), F_GETFL) & O_NONBLOCK, 0);
  ASSERT_GT(::fcntl(log->fd.get(), F_SETPIPE_SZ, 4096), 0);
  std::vector<uint8_t> big(1 << 20, 'x');
  int code = run_with_timeout([&] { return write_log(*log, big) < big.size() ? 0 : 1; });
  EXPECT_EQ(code, 0) << (code < 0 ? "write_log blocked on a full FIFO" : "wrote everything");
}

// /dev/null is accepted as such.
TEST(LogFile, DevNullAccepted) {
  auto log = open_log_file("/dev/null", "fault_log", LogOpenMode::kAppend);
  ASSERT_TRUE(log.ok()) << log.error().message;
  EXPECT_EQ(log->kind, LogFileKind::kNull);
}

// A pseudo-terminal is accepted as a terminal.
TEST(LogFile, TerminalAccepted) {
  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  ASSERT_TRUE(master.valid());
  ASSERT_EQ(::grantpt(master.get()), 0);
  ASSERT_EQ(::unlockpt(master.get()), 0);
  std::string slave = ::ptsname(master.get());
  auto log = open_log_file(slave, "console_log", LogOpenMode::kTruncate);
  ASSERT_TRUE(log.ok()) << log.error().message;
  EXPECT_EQ(log->kind, LogFileKind::kTerminal);
}

// Other character devices are refused with their numbers, directories as directories.
TEST(LogFile, OtherKindsRefused) {
  EXPECT_EQ(open_error("/dev/zero"),
            "console_log: '/dev/zero' is a character device (1:5) that is neither a terminal "
            "nor /dev/null");
  EXPECT_EQ(open_error("/tmp"),
            "console_log: '/tmp' is a directory: give a regular file, a FIFO with a reader, a "
            "terminal or /dev/null");
}

// A path in a missing directory is refused with the system's reason.
TEST(LogFile, UnopenablePathRefused) {
  EXPECT_EQ(open_error("/nonexistent/dir/console.log"),
            "console_log: cannot open '/nonexistent/dir/console.log': No such file or directory");
}

}  // namespace
}  // namespace hvmm::vmm
