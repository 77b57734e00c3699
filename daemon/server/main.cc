// hvmmd: the hvmm daemon. See daemon/server/README.md.
#include <unistd.h>

#include <absl/synchronization/mutex.h>

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

#include "hvmm/daemon/server/config.h"
#include "hvmm/daemon/server/daemon.h"
#include "hvmm/daemon/server/log.h"

// The bundled kernel, embedded by bundled_kernel.S (daemon/CMakeLists.txt): a Create without
// spec.kernel is checked against it.
extern "C" const uint8_t hvmm_bundled_kernel_start[];
extern "C" const uint8_t hvmm_bundled_kernel_end[];

namespace {

std::string self_exe() {
  char path[4096];
  ssize_t length = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  return length > 0 ? std::string(path, static_cast<size_t>(length)) : std::string("hvmmd");
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil checks every absl::Mutex (gRPC's) for lock-order cycles, recording stack
  // traces: a tenth of the daemon's CPU under load, for a check meant for debug builds.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto outcome = hvmm::daemon::parse_daemon_config(argc, argv, self_exe());
  if (!outcome.config) {
    std::fputs(outcome.message.c_str(), outcome.exit_status == 0 ? stdout : stderr);
    return outcome.exit_status;
  }
  auto logging = hvmm::daemon::log::setup(outcome.config->log_format, outcome.config->log_level);
  if (!logging) {
    std::fprintf(stderr, "hvmmd: %s\n", logging.error().message.c_str());
    return 120;
  }
  std::span<const uint8_t> bundled(hvmm_bundled_kernel_start, hvmm_bundled_kernel_end);
  return hvmm::daemon::run_daemon(*outcome.config, bundled);
}
