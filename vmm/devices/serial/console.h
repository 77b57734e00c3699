// Console: where the guest's serial output goes and where its input comes from.
//
// Output goes to stdout and, when asked, to a log (a LogFile, opened before the VM). The log
// is capped: once `log_max` bytes are in it (0: no cap), further output is dropped from the
// log and counted, so a chatty guest cannot fill the disk; stdout is never capped. A log that
// is a FIFO or a terminal is written without blocking: bytes it has no room for are dropped
// and counted too. Input is read from stdin only when stdin is a terminal; the terminal is
// then switched to non-canonical, no-echo mode for the life of the Console (signals such as
// Ctrl-C still work) and restored afterwards.
#pragma once

#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hvmm/vmm/host/log_file.h"

namespace hvmm::vmm {

class Console {
 public:
  // Write guest output to `output_fd` and `log` (at most `log_max` bytes, 0: no cap); read
  // stdin if `want_input` and stdin is a terminal.
  Console(std::optional<LogFile> log, uint64_t log_max, bool want_input,
          int output_fd = STDOUT_FILENO);
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // Emit one byte of guest output.
  void output(uint8_t byte);
  // The descriptor to poll for input, or -1 when input is not attached.
  int input_fd() const;
  // Read whatever input is available (empty at end of input).
  std::vector<uint8_t> read_input();

  // Bytes written to the log.
  uint64_t log_written() const { return log_written_.load(); }
  // Bytes left out of the log because it reached its cap.
  uint64_t dropped_over_cap() const { return dropped_over_cap_.load(); }
  // Bytes left out because the log (a full FIFO or terminal, or a failing file) took none.
  uint64_t dropped_unwritable() const { return dropped_unwritable_.load(); }
  // One stderr line per kind of drop ("" when nothing was dropped).
  std::string drop_report() const;

 private:
  std::optional<LogFile> log_;
  uint64_t log_max_;
  int output_fd_;
  bool input_;
  bool restore_terminal_ = false;
  termios saved_{};
  std::atomic<uint64_t> log_written_{0};
  std::atomic<uint64_t> dropped_over_cap_{0};
  std::atomic<uint64_t> dropped_unwritable_{0};
};

}  // namespace hvmm::vmm
