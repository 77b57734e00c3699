// Progress of a long operation (a balloon reaching its target, reclaim epochs): a bar
// redrawn in place on a terminal, one line per update otherwise (logs, pipes, tests).
#pragma once

#include <ostream>
#include <string>

namespace hvmm::client {

class Progress {
 public:
  // `bar`: redraw one line with '\r' (stdout is a terminal and not --json).
  Progress(std::ostream& out, bool bar) : out_(out), bar_(bar) {}
  ~Progress() { finish(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Show `fraction` (clamped to 0..1) done, with `text` after it.
  void update(double fraction, const std::string& text);

  // End the bar's line (once; nothing for lines).
  void finish();

 private:
  std::ostream& out_;
  bool bar_;
  bool drawn_ = false;
};

// The bar of `fraction` in `width` cells: "[#####.....]  50%".
std::string progress_bar(double fraction, int width = 30);

}  // namespace hvmm::client
