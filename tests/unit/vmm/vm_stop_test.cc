// Tests of VmStop: the first request decides the exit status, and only a VMM decision has a
// report line (a guest's own port-0xf4 byte, even 122, prints nothing).
#include "hvmm/vmm/machine/vm_stop.h"

#include <gtest/gtest.h>

#include "hvmm/vmm/machine/exit_status.h"

namespace hvmm::vmm {
namespace {

// A guest that writes 122 to port 0xf4 gets 122 and no line from the VMM.
TEST(VmStop, GuestExitPrintsNothingEvenForVmmCodes) {
  for (int status : {0, 42, 120, 121, 122, 123, 124, 255}) {
    VmStop stop;
    EXPECT_TRUE(stop.guest_exit(status));
    EXPECT_EQ(stop.status(), status);
    EXPECT_EQ(stop.report_line(), "") << status;
  }
}

// A VMM decision has exactly one line naming the reason and the status.
TEST(VmStop, VmmEndHasOneLine) {
  VmStop stop;
  EXPECT_TRUE(stop.vmm_end(kExitTripleFault, "triple fault (KVM_EXIT_SHUTDOWN) on vCPU 0"));
  EXPECT_EQ(stop.status(), kExitTripleFault);
  EXPECT_EQ(stop.report_line(),
            "hvmm: VM ended by the VMM: triple fault (KVM_EXIT_SHUTDOWN) on vCPU 0 (exit status "
            "122)\n");
}

// The first request wins: a vCPU failing after the guest's exit changes nothing, and a second
// failure does not add a second line.
TEST(VmStop, FirstRequestWins) {
  VmStop guest_first;
  EXPECT_FALSE(guest_first.requested());
  EXPECT_TRUE(guest_first.guest_exit(7));
  EXPECT_FALSE(guest_first.vmm_end(kExitInternalError, "late failure"));
  EXPECT_EQ(guest_first.status(), 7);
  EXPECT_EQ(guest_first.report_line(), "");

  VmStop vmm_first;
  EXPECT_TRUE(vmm_first.vmm_end(kExitSignalBase + 15, "SIGTERM received"));
  EXPECT_FALSE(vmm_first.vmm_end(kExitTripleFault, "triple fault on vCPU 1"));
  EXPECT_FALSE(vmm_first.guest_exit(0));
  EXPECT_TRUE(vmm_first.requested());
  EXPECT_EQ(vmm_first.status(), 143);
  EXPECT_EQ(vmm_first.report_line(),
            "hvmm: VM ended by the VMM: SIGTERM received (exit status 143)\n");
}

// A VMM decision without a reason is still announced, never silent.
TEST(VmStop, EmptyReasonStillAnnounced) {
  VmStop stop;
  stop.vmm_end(kExitInternalError, "");
  EXPECT_EQ(stop.report_line(), "hvmm: VM ended by the VMM: no reason given (exit status 123)\n");
}

// reason() says who ended the VM: nothing before a request, the guest's status, or the
// VMM's reason (the first request's).
TEST(VmStop, ReasonNamesTheDecision) {
  VmStop guest;
  EXPECT_EQ(guest.reason(), "");
  guest.guest_exit(3);
  guest.vmm_end(kExitInternalError, "late");
  EXPECT_EQ(guest.reason(), "guest exited with status 3");
  VmStop vmm;
  vmm.vmm_end(kExitSignalBase + 15, "SIGTERM received");
  EXPECT_EQ(vmm.reason(), "SIGTERM received");
}

}  // namespace
}  // namespace hvmm::vmm
