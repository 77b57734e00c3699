// Serial console plumbing: stdout, the capped log and terminal input.
#include "hvmm/vmm/devices/serial/console.h"

#include <fcntl.h>

#include <cerrno>
#include <cstring>

#include "hvmm/vmm/boot/input_file.h"

namespace hvmm::vmm {

// Take the log; put the terminal in non-canonical, no-echo mode when input is attached.
Console::Console(std::optional<LogFile> log, uint64_t log_max, bool want_input, int output_fd)
    : log_(std::move(log)),
      log_max_(log_max),
      output_fd_(output_fd),
      input_(want_input && ::isatty(STDIN_FILENO) == 1) {
  if (input_ && ::tcgetattr(STDIN_FILENO, &saved_) == 0) {
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    restore_terminal_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
}

// Give the terminal back as we found it.
Console::~Console() {
  if (restore_terminal_) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
}

// Write the byte to stdout and, within its cap, the log; a closed stdout must not stop the
// guest. The UART calls this under its lock, so the counters see one writer at a time.
void Console::output(uint8_t byte) {
  [[maybe_unused]] ssize_t n = ::write(output_fd_, &byte, 1);
  if (!log_) {
    return;
  }
  if (log_max_ != 0 && log_written_.load() >= log_max_) {
    dropped_over_cap_.fetch_add(1);
    return;
  }
  if (write_log(*log_, std::span<const uint8_t>(&byte, 1)) == 1) {
    log_written_.fetch_add(1);
  } else {
    dropped_unwritable_.fetch_add(1);
  }
}

// Say how much of the guest's output the log is missing, and why.
std::string Console::drop_report() const {
  std::string report;
  if (!log_) {
    return report;
  }
  if (dropped_over_cap() > 0) {
    report += fmt::format(
        "hvmm: console log '{}': {} bytes of console output dropped after the log reached its "
        "cap of {}\n",
        log_->path, dropped_over_cap(), describe_size(log_max_));
  }
  if (dropped_unwritable() > 0) {
    const char* why = log_->kind == LogFileKind::kRegular
                          ? "writing the file failed"
                          : "the FIFO or terminal was full (its reader did not keep up)";
    report += fmt::format("hvmm: console log '{}': {} bytes of console output dropped because {}\n",
                          log_->path, dropped_unwritable(), why);
  }
  return report;
}

// stdin while input is attached, else -1 (poll ignores negative descriptors).
int Console::input_fd() const {
  return input_ ? STDIN_FILENO : -1;
}

// Read up to a buffer of input; an error or end of file detaches input.
std::vector<uint8_t> Console::read_input() {
  std::vector<uint8_t> bytes(256);
  ssize_t n = ::read(STDIN_FILENO, bytes.data(), bytes.size());
  if (n <= 0) {
    if (n == 0 || errno != EINTR) {
      input_ = false;
    }
    return {};
  }
  bytes.resize(static_cast<size_t>(n));
  return bytes;
}

}  // namespace hvmm::vmm
