// DaemonTest (daemon_test.h).
#include "daemon_test.h"

#include <iostream>

namespace hvmm::e2e {

namespace {

// The last `lines` lines of `text`.
std::string tail(const std::string& text, size_t lines) {
  size_t at = text.size();
  for (size_t seen = 0; at > 0 && seen <= lines; --at) {
    if (text[at - 1] == '\n') {
      ++seen;
    }
  }
  return text.substr(at);
}

}  // namespace

void DaemonTest::SetUp() {
  HVMM_E2E_SKIP_UNLESS_AVAILABLE();
  auto daemon = HvmmdProcess::start(daemon_options());
  ASSERT_TRUE(daemon.ok()) << daemon.error().message;
  daemon_ = std::move(*daemon);
  api_ = std::make_unique<Api>(daemon_->channel());
}

void DaemonTest::TearDown() {
  if (daemon_ && HasFailure()) {
    std::cout << "--- the end of hvmmd's log (" << daemon_->directory() << "/hvmmd.log):\n"
              << tail(daemon_->log(), 60) << "---\n";
  }
  api_.reset();
  daemon_.reset();
}

}  // namespace hvmm::e2e
