// Integration tests of SMP under real KVM: the guest starts every AP with INIT/SIPI and
// each AP reports its own APIC id from CPUID.
#include <gtest/gtest.h>

#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

using testing::guest;
using testing::run_hvmm;
using testing::RunResult;

// With 4 vCPUs, APs 1..3 report in, in order, with matching CPUID leaf 1 and 0xB ids.
TEST(Smp, EveryApReportsIn) {
  HVMM_SKIP_WITHOUT_KVM();
  RunResult run = run_hvmm({"run", "--kernel", guest("smp"), "--vcpus", "4", "--cmdline", "4"});
  EXPECT_EQ(run.out,
            "bsp up, starting APs\n"
            "cpu 1 up\n"
            "cpu 2 up\n"
            "cpu 3 up\n"
            "all cpus up\n");
  EXPECT_EQ(run.status, 0) << run.err;
}

// With 2 vCPUs the single AP reports in.
TEST(Smp, TwoVcpus) {
  HVMM_SKIP_WITHOUT_KVM();
  RunResult run = run_hvmm({"run", "--kernel", guest("smp"), "--vcpus", "2", "--cmdline", "2"});
  EXPECT_EQ(run.out, "bsp up, starting APs\ncpu 1 up\nall cpus up\n");
  EXPECT_EQ(run.status, 0) << run.err;
}

// A guest that expects an AP the VM does not have sees it never start (status 3), and the
// VM still stops cleanly.
TEST(Smp, MissingApDoesNotStart) {
  HVMM_SKIP_WITHOUT_KVM();
  RunResult run = run_hvmm({"run", "--kernel", guest("smp"), "--vcpus", "1", "--cmdline", "2"});
  EXPECT_EQ(run.out, "bsp up, starting APs\nan AP did not start\n");
  EXPECT_EQ(run.status, 3) << run.err;
}

}  // namespace
}  // namespace hvmm::vmm
