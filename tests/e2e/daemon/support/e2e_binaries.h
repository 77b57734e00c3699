// Where the end-to-end tests find the programs they drive (paths of this build tree, built in
// by tests/e2e/CMakeLists.txt), and why a test cannot run here.
#pragma once

#include <string>

namespace hvmm::e2e {

// The daemon, its VM process, the gRPC client and the `hvmm` front end ("" when not built).
struct Binaries {
  std::string hvmmd;
  std::string hvmm_vm;
  std::string hvmm_client;
  std::string hvmm;
};

// The programs of this build.
const Binaries& binaries();

// Why the daemon cannot run VMs here ("" when it can): /dev/kvm cannot be opened, or a
// program the tests need was not built.
std::string unavailable_reason();

// Skip the current test, saying why, when the daemon cannot run VMs here.
#define HVMM_E2E_SKIP_UNLESS_AVAILABLE()                          \
  do {                                                            \
    const std::string reason = ::hvmm::e2e::unavailable_reason(); \
    if (!reason.empty()) {                                        \
      GTEST_SKIP() << reason;                                     \
    }                                                             \
  } while (false)

}  // namespace hvmm::e2e
