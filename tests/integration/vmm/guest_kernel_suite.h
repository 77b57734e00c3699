// One booted guest kernel for every test of a suite: under nested KVM the boot is the slow
// part, so a suite boots once, its tests share the VM, and the suite's end shuts it down
// and expects exit status 0. `Suite` (the test fixture itself, CRTP) gives the statics a
// suite of their own and says how its VM is built: `static GuestKernelVmOptions vm_options()`.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "guest_kernel_vm.h"
#include "run_hvmm.h"

namespace hvmm::vmm::testing {

template <typename Suite>
class GuestKernelSuite : public ::testing::Test {
 protected:
  static constexpr std::chrono::seconds kBootTimeout{90};
  static constexpr std::chrono::seconds kShutdownTimeout{30};

  static void SetUpTestSuite() {
    if (!kvm_unavailable_reason().empty() || !guest_kernel_unavailable_reason().empty()) {
      return;
    }
    console_ = std::make_unique<TempPath>("suite-console");
    GuestKernelVmOptions options = Suite::vm_options();
    options.console_log = console_->path;
    memory_ = options.memory;
    auto started = GuestKernelVm::start(options);
    if (!started) {
      start_error_ = started.error().message;
      return;
    }
    vm_ = std::move(*started);
    if (auto pinged = vm_->ping(kBootTimeout); !pinged) {
      start_error_ = pinged.error().message;
    }
  }
  static void TearDownTestSuite() {
    if (vm_ && start_error_.empty()) {
      auto status = vm_->shut_down(0, kShutdownTimeout);
      EXPECT_TRUE(status.ok()) << status.error().message;
      EXPECT_EQ(status.ok() ? *status : -1, 0) << console();
    }
    vm_.reset();
    console_.reset();
  }
  void SetUp() override {
    HVMM_SKIP_WITHOUT_KVM();
    if (auto why = guest_kernel_unavailable_reason(); !why.empty()) {
      GTEST_SKIP() << why;
    }
    ASSERT_TRUE(start_error_.empty()) << start_error_ << "\nconsole:\n" << console();
    ASSERT_NE(vm_, nullptr);
  }

  static std::string console() { return console_ ? slurp(console_->path) : ""; }
  static Machine& machine() { return vm_->machine(); }
  static IpaRange all_ram() { return IpaRange{Ipa(0), memory_}; }

  static inline std::unique_ptr<TempPath> console_;
  static inline std::unique_ptr<GuestKernelVm> vm_;
  static inline std::string start_error_;
  static inline uint64_t memory_ = 0;
};

}  // namespace hvmm::vmm::testing
