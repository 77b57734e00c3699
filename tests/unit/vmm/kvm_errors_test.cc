// Tests that KVM start-up failures produce messages a person can act on. These need no
// working KVM: they open paths that are not /dev/kvm.
#include <fcntl.h>
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

// A "VM" that offers no capability at all: /dev/null answers every KVM ioctl with ENOTTY.
KvmVm vm_without_capabilities() {
  return KvmVm::adopt(UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC)));
}

// Dirty tracking on a KVM without its capability fails naming the capability (and the
// tracking that needed it), instead of a bare ioctl error.
TEST(KvmErrors, MissingDirtyLogCapabilitiesAreNamed) {
  KvmVm vm = vm_without_capabilities();
  auto manual = vm.enable_manual_dirty_log_protect();
  ASSERT_FALSE(manual.ok());
  EXPECT_EQ(manual.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(manual.error().message.find("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2"), std::string::npos);
  auto ring = vm.enable_dirty_ring(4096);
  ASSERT_FALSE(ring.ok());
  EXPECT_EQ(ring.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(ring.error().message.find("KVM_CAP_DIRTY_LOG_RING"), std::string::npos);
  EXPECT_NE(ring.error().message.find("\"ring\""), std::string::npos);
}

// A ring size that is not a power of two is refused before KVM is asked.
TEST(KvmErrors, DirtyRingSizeMustBeAPowerOfTwo) {
  KvmVm vm = vm_without_capabilities();
  auto ring = vm.enable_dirty_ring(3000);
  ASSERT_FALSE(ring.ok());
  EXPECT_EQ(ring.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(ring.error().message.find("power of two"), std::string::npos);
}

}  // namespace
}  // namespace hvmm::vmm
