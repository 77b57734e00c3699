// Boot the guest kernel with `selftest=all` under `hvmm run` and under QEMU's microvm PVH
// loader, and check one "selftest <name>: ok" line per selftest, the summary and the exit
// status. Skips (with the reason) when /dev/kvm, the hvmm binary or QEMU is missing.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "child_process.h"

namespace {

// Every selftest the kernel runs for `selftest=all`, in order.
const std::vector<std::string> kSelftests = {
    "memblock",      "buddy",    "slab",         "kmalloc",     "vmalloc",       "page_table",
    "demand_paging", "timer",    "smp",          "pcid",        "tlb_shootdown", "tlb_batch",
    "tlb_ceiling",   "tlb_lazy", "user_process", "user_faults", "user_parallel"};

using hvmm::testing::kvm_unavailable_reason;
using hvmm::testing::RunResult;

// Run argv with stdout+stderr captured together and stdin from /dev/null; kill after
// `timeout`.
RunResult run(const std::vector<std::string>& args, std::chrono::seconds timeout) {
  return hvmm::testing::run_process(args, timeout, /*merge_stderr=*/true);
}

// Run the kernel under `hvmm run`.
RunResult run_hvmm(unsigned vcpus, const std::string& cmdline) {
  return run({HVMM_BINARY, "run", "--kernel", HVMM_GUEST_KERNEL_ELF, "--memory", "256M", "--vcpus",
              std::to_string(vcpus), "--cmdline", cmdline},
             std::chrono::seconds(120));
}

// Run the kernel under QEMU microvm (PVH loader, isa-debug-exit at 0xf4).
RunResult run_qemu(unsigned vcpus, const std::string& cmdline) {
  return run({HVMM_QEMU,
              "-M",
              "microvm",
              "-cpu",
              "host,-arch-capabilities",
              "-enable-kvm",
              "-m",
              "256M",
              "-smp",
              std::to_string(vcpus),
              "-nodefaults",
              "-no-user-config",
              "-nographic",
              "-serial",
              "stdio",
              "-device",
              "isa-debug-exit,iobase=0xf4,iosize=1",
              "-no-reboot",
              "-kernel",
              HVMM_GUEST_KERNEL_ELF,
              "-append",
              cmdline},
             std::chrono::seconds(120));
}

// Run the kernel under QEMU microvm with TCG (no KVM): a software TLB that really keeps
// stale translations, and an xAPIC instead of x2APIC.
RunResult run_qemu_tcg(unsigned vcpus, const std::string& cmdline) {
  return run({HVMM_QEMU,
              "-M",
              "microvm",
              "-accel",
              "tcg",
              "-cpu",
              "max",
              "-m",
              "256M",
              "-smp",
              std::to_string(vcpus),
              "-nodefaults",
              "-no-user-config",
              "-nographic",
              "-serial",
              "stdio",
              "-device",
              "isa-debug-exit,iobase=0xf4,iosize=1",
              "-no-reboot",
              "-kernel",
              HVMM_GUEST_KERNEL_ELF,
              "-append",
              cmdline},
             std::chrono::seconds(120));
}

// Skip unless KVM and the hvmm binary are available.
#define SKIP_WITHOUT_HVMM()                                           \
  do {                                                                \
    std::string reason = kvm_unavailable_reason();                    \
    if (!reason.empty())                                              \
      GTEST_SKIP() << reason;                                         \
    if (std::string(HVMM_BINARY).empty())                             \
      GTEST_SKIP() << "the hvmm target does not exist in this build"; \
  } while (false)

// Skip unless KVM and QEMU are available.
#define SKIP_WITHOUT_QEMU()                                  \
  do {                                                       \
    std::string reason = kvm_unavailable_reason();           \
    if (!reason.empty())                                     \
      GTEST_SKIP() << reason;                                \
    if (std::string(HVMM_QEMU).empty())                      \
      GTEST_SKIP() << "qemu-system-x86_64 is not installed"; \
  } while (false)

// Assert one ok line per selftest and an all-passed summary.
void expect_all_selftests_ok(const RunResult& r) {
  ASSERT_FALSE(r.timed_out) << r.out;
  for (const std::string& name : kSelftests)
    EXPECT_NE(r.out.find("selftest " + name + ": ok"), std::string::npos)
        << "no ok line for " << name << "\n"
        << r.out;
  std::string summary = "selftests: " + std::to_string(kSelftests.size()) + " run, " +
                        std::to_string(kSelftests.size()) + " passed, 0 failed";
  EXPECT_NE(r.out.find(summary), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("boot: "), std::string::npos) << "no boot time line\n" << r.out;
}

// All selftests pass under hvmm with one vCPU and the VM exits with status 0.
TEST(GuestKernelHvmm, SelftestsPassWithOneVcpu) {
  SKIP_WITHOUT_HVMM();
  RunResult r = run_hvmm(1, "selftest=all");
  expect_all_selftests_ok(r);
  EXPECT_EQ(r.status, 0) << r.out;
}

// All selftests pass under hvmm with two vCPUs, including the cross-CPU TLB shootdown.
TEST(GuestKernelHvmm, SelftestsPassWithTwoVcpus) {
  SKIP_WITHOUT_HVMM();
  RunResult r = run_hvmm(2, "selftest=all");
  expect_all_selftests_ok(r);
  EXPECT_NE(r.out.find("selftest smp: ok - 2 CPUs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CPU 1 saw the new frame"), std::string::npos) << r.out;
  EXPECT_EQ(r.status, 0) << r.out;
}

// Skipping the shootdown IPIs makes the TLB selftest fail and the VM exit with status 1.
TEST(GuestKernelHvmm, SkippedShootdownIsCaught) {
  SKIP_WITHOUT_HVMM();
  RunResult r = run_hvmm(2, "selftest=tlb_shootdown tlb_skip_shootdown");
  ASSERT_FALSE(r.timed_out) << r.out;
  EXPECT_NE(r.out.find("selftest tlb_shootdown: FAILED"), std::string::npos) << r.out;
  EXPECT_EQ(r.status, 1) << r.out;
}

// An initrd reaches the kernel as PVH module 0: its bytes are readable and its memory is
// reserved from the allocators (the memblock selftest checks the reservation).
TEST(GuestKernelHvmm, InitrdArrivesAsModule) {
  SKIP_WITHOUT_HVMM();
  std::string path = "/tmp/hvmm-guest-it-initrd-" + std::to_string(::getpid());
  {
    std::ofstream initrd(path);
    initrd << "hvmm-initrd-test-payload\n";
  }
  RunResult r = run({HVMM_BINARY, "run", "--kernel", HVMM_GUEST_KERNEL_ELF, "--memory", "256M",
                     "--initrd", path, "--cmdline", "selftest=memblock"},
                    std::chrono::seconds(120));
  std::remove(path.c_str());
  ASSERT_FALSE(r.timed_out) << r.out;
  EXPECT_NE(r.out.find("25 bytes, starts with \"hvmm-initrd-test\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("selftest memblock: ok"), std::string::npos) << r.out;
  EXPECT_EQ(r.status, 0) << r.out;
}

// A ring-3 workload runs to a clean exit (demand paging of 4 MiB).
TEST(GuestKernelHvmm, WorkloadTouchSeqRuns) {
  SKIP_WITHOUT_HVMM();
  RunResult r = run_hvmm(1, "workload=touch_seq:4M");
  ASSERT_FALSE(r.timed_out) << r.out;
  EXPECT_NE(r.out.find("workload touch_seq: ok exit 0"), std::string::npos) << r.out;
  EXPECT_EQ(r.status, 0) << r.out;
}

// A kernel page fault panics with its cause, the faulting address and a register dump, and
// the VM exits with the kernel-fault status 3 (so does an AP stack overflow into its guard
// page; a plain panic exits with 2).
TEST(GuestKernelHvmm, KernelFaultPanicsWithRegisterDump) {
  SKIP_WITHOUT_HVMM();
  RunResult r = run_hvmm(1, "crash=pagefault crash_address=0x10");
  ASSERT_FALSE(r.timed_out) << r.out;
  EXPECT_NE(r.out.find("PANIC: kernel page fault at 10 (read, not present)"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("cr2 0000000000000010"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rip ffffffff8"), std::string::npos) << r.out;
  EXPECT_EQ(r.status, 3) << r.out;
  RunResult so = run_hvmm(2, "crash=stack");
  EXPECT_NE(so.out.find("PANIC: kernel stack overflow on CPU 1"), std::string::npos) << so.out;
  EXPECT_EQ(so.status, 3) << so.out;
  RunResult p = run_hvmm(1, "crash=panic");
  EXPECT_NE(p.out.find("PANIC: requested on the command line"), std::string::npos) << p.out;
  EXPECT_EQ(p.status, 2) << p.out;
}

// All selftests pass under QEMU microvm's PVH loader with one vCPU (QEMU exits 0<<1|1).
TEST(GuestKernelQemu, SelftestsPassWithOneVcpu) {
  SKIP_WITHOUT_QEMU();
  RunResult r = run_qemu(1, "selftest=all");
  expect_all_selftests_ok(r);
  EXPECT_EQ(r.status, 1) << r.out;
}

// All selftests pass under QEMU microvm with two vCPUs.
TEST(GuestKernelQemu, SelftestsPassWithTwoVcpus) {
  SKIP_WITHOUT_QEMU();
  RunResult r = run_qemu(2, "selftest=all");
  expect_all_selftests_ok(r);
  EXPECT_NE(r.out.find("selftest smp: ok - 2 CPUs"), std::string::npos) << r.out;
  EXPECT_EQ(r.status, 1) << r.out;
}

// Under TCG, whose TLB keeps stale entries, the shootdown selftest passes with the IPIs and
// catches the stale translation on CPU 1 when they are skipped.
TEST(GuestKernelQemuTcg, StaleTranslationCaughtOnlyWithoutShootdown) {
  if (std::string(HVMM_QEMU).empty())
    GTEST_SKIP() << "qemu-system-x86_64 is not installed";
  RunResult ok = run_qemu_tcg(2, "selftest=smp,tlb_shootdown,tlb_batch");
  ASSERT_FALSE(ok.timed_out) << ok.out;
  EXPECT_NE(ok.out.find("selftest tlb_shootdown: ok - CPU 1 saw the new frame"), std::string::npos)
      << ok.out;
  EXPECT_EQ(ok.status, 1) << ok.out;
  RunResult stale = run_qemu_tcg(2, "selftest=tlb_shootdown tlb_skip_shootdown");
  ASSERT_FALSE(stale.timed_out) << stale.out;
  EXPECT_NE(stale.out.find("FAILED stale translation: CPU 1 still reads the old frame (aaaa)"),
            std::string::npos)
      << stale.out;
  EXPECT_EQ(stale.status, 3) << stale.out;  // QEMU: (1 << 1) | 1
}

}  // namespace
