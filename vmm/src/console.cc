// Serial console plumbing: stdout, the log file and terminal input.
#include "hvmm/vmm/console.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hvmm::vmm {

// Open the log (truncating it) and decide whether stdin is ours.
Result<std::unique_ptr<Console>> Console::open(const std::string& log_path, bool want_input) {
  UniqueFd log;
  if (!log_path.empty()) {
    log.reset(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!log.valid()) {
      return make_error(ErrorCode::kInvalidArgument, "cannot open --console-log '{}': {}", log_path,
                        std::strerror(errno));
    }
  }
  bool input = want_input && ::isatty(STDIN_FILENO) == 1;
  return std::make_unique<Console>(std::move(log), input);
}

// Put the terminal in non-canonical, no-echo mode when input is attached.
Console::Console(UniqueFd log, bool input) : log_(std::move(log)), input_(input) {
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

// Write the byte to stdout and the log; a closed stdout must not stop the guest.
void Console::output(uint8_t byte) {
  [[maybe_unused]] ssize_t n = ::write(STDOUT_FILENO, &byte, 1);
  if (log_.valid()) {
    n = ::write(log_.get(), &byte, 1);
  }
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
