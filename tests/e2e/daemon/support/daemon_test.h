// DaemonTest: the gtest fixture of the end-to-end tests. Each test gets its own hvmmd (a
// temporary socket, config and state directory) answering SERVING and an Api over it; the
// test skips, saying why, where the daemon cannot run VMs (no /dev/kvm, a program not built).
// A failed test prints the end of the daemon's log.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "api.h"
#include "e2e_binaries.h"
#include "hvmmd_process.h"

namespace hvmm::e2e {

class DaemonTest : public ::testing::Test {
 protected:
  // The daemon's options for this fixture (a test suite overrides it for another VMID size).
  virtual HvmmdOptions daemon_options() const { return {}; }

  void SetUp() override;
  void TearDown() override;

  HvmmdProcess& daemon() { return *daemon_; }
  Api& api() { return *api_; }

 private:
  std::unique_ptr<HvmmdProcess> daemon_;
  std::unique_ptr<Api> api_;
};

}  // namespace hvmm::e2e
