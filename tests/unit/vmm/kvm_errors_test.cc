// Tests that KVM start-up failures produce messages a person can act on. These need no
// working KVM: they open paths that are not /dev/kvm.
#include <gtest/gtest.h>

#include "hvmm/vmm/kvm/kvm.h"

namespace hvmm::vmm {
namespace {

// A missing device node says KVM is not available and what to do.
TEST(KvmErrors, MissingDeviceIsUnavailable) {
  auto kvm = Kvm::open("/nonexistent/kvm");
  ASSERT_FALSE(kvm.ok());
  EXPECT_EQ(kvm.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(kvm.error().message.find("/nonexistent/kvm missing"), std::string::npos);
  EXPECT_NE(kvm.error().message.find("kvm_intel"), std::string::npos);
}

// A device that is not KVM fails the API version check, naming the version it got.
TEST(KvmErrors, NonKvmDeviceFailsVersionCheck) {
  auto kvm = Kvm::open("/dev/null");
  ASSERT_FALSE(kvm.ok());
  EXPECT_NE(kvm.error().message.find("KVM API version -1 unsupported"), std::string::npos);
}

}  // namespace
}  // namespace hvmm::vmm
