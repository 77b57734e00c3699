// Progress bars and progress lines.
#include "hvmm/daemon/client/progress.h"

#include <fmt/format.h>

#include <algorithm>

namespace hvmm::client {

std::string progress_bar(double fraction, int width) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  const int filled = static_cast<int>(fraction * width + 0.5);
  return fmt::format("[{}{}] {:3.0f}%", std::string(static_cast<size_t>(filled), '#'),
                     std::string(static_cast<size_t>(width - filled), '.'), fraction * 100);
}

// "\r" then the bar and the text, padded over what a longer previous line left.
void Progress::update(double fraction, const std::string& text) {
  if (!bar_) {
    out_ << text << "\n";
    out_.flush();
    return;
  }
  out_ << "\r" << progress_bar(fraction) << "  " << text << "\033[K";
  out_.flush();
  drawn_ = true;
}

void Progress::finish() {
  if (bar_ && drawn_) {
    out_ << "\n";
    out_.flush();
    drawn_ = false;
  }
}

}  // namespace hvmm::client
