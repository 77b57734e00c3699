// Helpers of the vmm integration tests: run the real `hvmm` binary and capture its output,
// and skip (saying why) when /dev/kvm cannot be opened.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "child_process.h"

namespace hvmm::vmm::testing {

using ::hvmm::testing::kvm_unavailable_reason;
using ::hvmm::testing::RunResult;
using ::hvmm::testing::slurp;
using ::hvmm::testing::TempPath;

#define HVMM_SKIP_WITHOUT_KVM()                                          \
  do {                                                                   \
    std::string reason = ::hvmm::vmm::testing::kvm_unavailable_reason(); \
    if (!reason.empty()) {                                               \
      GTEST_SKIP() << reason;                                            \
    }                                                                    \
  } while (false)

// The path of a test guest ELF.
inline std::string guest(const std::string& name) {
  return std::string(HVMM_GUEST_DIR) + "/" + name + ".elf";
}

// HvmmProcess is one running `hvmm args...` with stdout and stderr captured to files.
class HvmmProcess : public ::hvmm::testing::ChildProcess {
 public:
  explicit HvmmProcess(const std::vector<std::string>& args) : ChildProcess(with_binary(args)) {}

 private:
  static std::vector<std::string> with_binary(const std::vector<std::string>& args) {
    std::vector<std::string> argv{HVMM_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
};

// Run `hvmm args...` with stdin from /dev/null, wait up to `timeout`, capture everything.
inline RunResult run_hvmm(const std::vector<std::string>& args,
                          std::chrono::seconds timeout = std::chrono::seconds(60)) {
  HvmmProcess process(args);
  return process.wait(timeout);
}

}  // namespace hvmm::vmm::testing
