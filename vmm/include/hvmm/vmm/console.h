// Console: where the guest's serial output goes and where its input comes from.
//
// Output goes to stdout and, when asked, to a log file. Input is read from stdin only when
// stdin is a terminal; the terminal is then switched to non-canonical, no-echo mode for the
// life of the Console (signals such as Ctrl-C still work) and restored afterwards.
#pragma once

#include <termios.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hvmm/base/result.h"
#include "hvmm/vmm/unique_fd.h"

namespace hvmm::vmm {

class Console {
 public:
  // Open the optional log file and, if `want_input` and stdin is a terminal, take stdin.
  static Result<std::unique_ptr<Console>> open(const std::string& log_path, bool want_input);
  Console(UniqueFd log, bool input);
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // Emit one byte of guest output.
  void output(uint8_t byte);
  // The descriptor to poll for input, or -1 when input is not attached.
  int input_fd() const;
  // Read whatever input is available (empty at end of input).
  std::vector<uint8_t> read_input();

 private:
  UniqueFd log_;
  bool input_;
  bool restore_terminal_ = false;
  termios saved_{};
};

}  // namespace hvmm::vmm
