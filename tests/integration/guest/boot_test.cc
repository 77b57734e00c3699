// Boot the guest kernel with `selftest=all` under `hvmm run` and under QEMU's microvm PVH
// loader, and check one line per selftest ("ok", or "skip" with its reason for exactly the
// tests expected to skip with that many CPUs), the summary and the exit status. The hvmm
// tests skip (with the reason) without /dev/kvm or the hvmm binary. The QEMU tests use KVM
// when /dev/kvm opens and TCG otherwise; they skip without QEMU, except under CI (the
// environment variable CI set), where a missing QEMU is a failure.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "child_process.h"
#include "hvmm/base/pattern_mix.h"

namespace {

// Every selftest the kernel runs for `selftest=all`, in order.
// clang-format off
const std::vector<std::string> kSelftests = {
    "memblock",         "buddy",             "slab",         "kmalloc",     "vmalloc",
    "page_table",       "demand_paging",     "timer",        "smp",         "pcid",
    "tlb_shootdown",    "tlb_batch",         "tlb_ceiling",  "tlb_lazy",    "user_process",
    "user_faults",      "user_parallel",     "control_requests", "control_workloads",
    "control_hold",     "control_tlb"};
// clang-format on

// Selftest name → skip reason.
using Skips = std::map<std::string, std::string>;

// What skips with one CPU: the tests that need a second CPU.
const Skips kSkipsWithOneCpu = {{"tlb_shootdown", "needs 2 CPUs"},
                                {"tlb_batch", "needs 2 CPUs"},
                                {"tlb_lazy", "needs 2 CPUs"},
                                {"user_parallel", "needs 2 CPUs"}};

// What skips with two CPUs: nothing.
const Skips kSkipsWithTwoCpus = {};

using hvmm::testing::kvm_unavailable_reason;
using hvmm::testing::RunResult;

// Longest a guest run may take under KVM, where PVM emulates every ring-0 instruction; the
// margin absorbs a loaded host (ctest's own limit is 300 s per test).
constexpr std::chrono::seconds kRunTimeout(120);

// Longest a QEMU TCG run may take. Launch to exit, `selftest=all` took 0.5-0.8 s with one or
// two vCPUs on the 2-core machines, 1.3 s at worst while they were busy with builds.
constexpr std::chrono::seconds kTcgRunTimeout(60);

// Run argv with stdout+stderr captured together and stdin from /dev/null; kill after
// `timeout`.
RunResult run(const std::vector<std::string>& args, std::chrono::seconds timeout = kRunTimeout) {
  return hvmm::testing::run_process(args, timeout, /*merge_stderr=*/true);
}

// Run the kernel under `hvmm run`.
RunResult run_hvmm(unsigned vcpus, const std::string& cmdline) {
  return run({HVMM_BINARY, "run", "--kernel", HVMM_GUEST_KERNEL_ELF, "--memory", "256M", "--vcpus",
              std::to_string(vcpus), "--cmdline", cmdline});
}

// True when the environment variable CI is set (to anything but "", "0" or "false").
bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) != "" && std::string(ci) != "0" &&
         std::string(ci) != "false";
}

// qemu-system-x86_64: the one found when the build was configured, else the first on PATH;
// "" when there is none.
std::string qemu_binary() {
  if (std::string(HVMM_QEMU).empty() || ::access(HVMM_QEMU, X_OK) != 0) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path != nullptr ? path : "");
    for (std::string dir; std::getline(dirs, dir, ':');) {
      std::string candidate = dir + "/qemu-system-x86_64";
      if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0)
        return candidate;
    }
    return "";
  }
  return HVMM_QEMU;
}

// How QEMU executes the guest.
enum class Accel { kKvm, kTcg };

// KVM when /dev/kvm opens, else TCG (said once on the test's output).
Accel best_accel() {
  std::string reason = kvm_unavailable_reason();
  if (reason.empty())
    return Accel::kKvm;
  std::cout << "[   NOTE   ] " << reason << ": QEMU runs the guest with TCG\n";
  return Accel::kTcg;
}

// Run the kernel under QEMU microvm (PVH loader, isa-debug-exit at 0xf4). TCG has a
// software TLB that really keeps stale translations, and an xAPIC instead of x2APIC.
RunResult run_qemu(Accel accel, unsigned vcpus, const std::string& cmdline) {
  std::vector<std::string> args = {qemu_binary(), "-M", "microvm"};
  if (accel == Accel::kKvm)
    args.insert(args.end(), {"-cpu", "host,-arch-capabilities", "-enable-kvm"});
  else
    args.insert(args.end(), {"-accel", "tcg", "-cpu", "max"});
  args.insert(args.end(),
              {"-m", "256M", "-smp", std::to_string(vcpus), "-nodefaults", "-no-user-config",
               "-nographic", "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
               "-no-reboot", "-kernel", HVMM_GUEST_KERNEL_ELF, "-append", cmdline});
  auto start = std::chrono::steady_clock::now();
  RunResult r = run(args, accel == Accel::kTcg ? kTcgRunTimeout : kRunTimeout);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  std::cout << "[   NOTE   ] QEMU (" << (accel == Accel::kKvm ? "KVM" : "TCG") << ", " << vcpus
            << " vCPU" << (vcpus == 1 ? "" : "s") << ", \"" << cmdline << "\"): " << ms.count()
            << " ms\n";
  return r;
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

// Skip unless QEMU is installed; under CI, fail instead (CI installs it and must run these).
#define REQUIRE_QEMU()                                                                       \
  do {                                                                                       \
    if (qemu_binary().empty()) {                                                             \
      if (running_in_ci())                                                                   \
        FAIL() << "qemu-system-x86_64 is not installed and CI is set: CI must run the QEMU " \
                  "tests (deploy/install-deps.sh --bench installs QEMU)";                    \
      GTEST_SKIP() << "qemu-system-x86_64 is not installed";                                 \
    }                                                                                        \
  } while (false)

// One "selftest <name>: <status>..." line: the status word and what follows it.
struct SelftestLine {
  std::string status;  // "ok", "FAILED" or "skip"
  std::string rest;    // the text after the status word (" - note (12 us)", ...)
};

// The selftest lines of a console, in order, as (name, line) pairs.
std::vector<std::pair<std::string, SelftestLine>> selftest_lines(const std::string& out) {
  std::vector<std::pair<std::string, SelftestLine>> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.rfind("selftest ", 0) != 0)
      continue;
    size_t colon = line.find(": ");
    if (colon == std::string::npos)
      continue;
    std::string after = line.substr(colon + 2);
    size_t space = after.find(' ');
    SelftestLine parsed{after.substr(0, space),
                        space == std::string::npos ? "" : after.substr(space)};
    lines.emplace_back(line.substr(9, colon - 9), parsed);
  }
  return lines;
}

// The summary line a run of every selftest prints when exactly `skips` skip and none fails.
std::string expected_summary(const Skips& skips) {
  size_t run = kSelftests.size();
  return "selftests: " + std::to_string(run) + " run, " + std::to_string(run - skips.size()) +
         " passed, 0 failed, " + std::to_string(skips.size()) + " skipped (";
}

// Assert one line per selftest in order: "skip - <reason>" for exactly the tests in `skips`,
// "ok" for all others; the matching summary line; the boot time line.
void expect_selftests(const RunResult& r, const Skips& skips) {
  ASSERT_FALSE(r.timed_out) << r.out;
  auto lines = selftest_lines(r.out);
  ASSERT_EQ(lines.size(), kSelftests.size()) << r.out;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& [name, line] = lines[i];
    EXPECT_EQ(name, kSelftests[i]) << r.out;
    auto skip = skips.find(name);
    if (skip == skips.end()) {
      EXPECT_EQ(line.status, "ok") << name << line.rest << "\n" << r.out;
    } else {
      EXPECT_EQ(line.status, "skip") << name << line.rest << "\n" << r.out;
      EXPECT_TRUE(line.rest.starts_with(" - " + skip->second + " ("))
          << name << ": expected the reason \"" << skip->second << "\", got \"" << line.rest
          << "\"\n"
          << r.out;
    }
  }
  EXPECT_NE(r.out.find(expected_summary(skips)), std::string::npos)
      << "expected \"" << expected_summary(skips) << "...\"\n"
      << r.out;
  EXPECT_NE(r.out.find("boot: "), std::string::npos) << "no boot time line\n" << r.out;
}

// The shootdown selftest's failure when the shootdown was skipped on purpose: CPU 1 has no
// record of flushing the page (what shows under KVM and TCG alike).
constexpr const char* kNoRemoteRecord = "CPU 1 has no record of flushing page ";
constexpr const char* kSkippedOnPurpose = "shootdown skipped on purpose (tlb_skip_shootdown)";
// ... and what TCG's stale TLB adds to it: CPU 1 read the old frame's marker.
constexpr const char* kStaleRead =
    "selftest tlb_shootdown: FAILED stale translation: CPU 1 still reads the old frame (aaaa); ";

// With one vCPU under hvmm the single-CPU selftests pass, the four two-CPU ones skip with
// their reason, and the VM exits with status 0.
TEST(GuestKernelHvmm, SelftestsWithOneVcpuPassOrSkipAsExpected) {
  SKIP_WITHOUT_HVMM();
  RunResult r = run_hvmm(1, "selftest=all");
  expect_selftests(r, kSkipsWithOneCpu);
  EXPECT_EQ(r.status, 0) << r.out;
}

// With two vCPUs under hvmm every selftest passes (none skips), the shootdown one on CPU 1's
// own record of flushing the page.
TEST(GuestKernelHvmm, SelftestsPassWithTwoVcpus) {
  SKIP_WITHOUT_HVMM();
  RunResult r = run_hvmm(2, "selftest=all");
  expect_selftests(r, kSkipsWithTwoCpus);
  EXPECT_NE(r.out.find("selftest smp: ok - 2 CPUs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("selftest tlb_shootdown: ok - CPU 1 flushed the page for gen"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.status, 0) << r.out;
}

// Skipping the shootdown IPIs makes the TLB selftest fail under hvmm too, where no stale
// read can show: CPU 1 has no record of the flush. The VM exits with status 1.
TEST(GuestKernelHvmm, SkippedShootdownIsCaught) {
  SKIP_WITHOUT_HVMM();
  RunResult r = run_hvmm(2, "selftest=tlb_shootdown tlb_skip_shootdown");
  ASSERT_FALSE(r.timed_out) << r.out;
  EXPECT_NE(r.out.find("selftest tlb_shootdown: FAILED "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(kNoRemoteRecord), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(kSkippedOnPurpose), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("selftests: 1 run, 0 passed, 1 failed, 0 skipped"), std::string::npos)
      << r.out;
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
                     "--initrd", path, "--cmdline", "selftest=memblock"});
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

// Under QEMU microvm's PVH loader with one vCPU (KVM, or TCG without /dev/kvm) the
// single-CPU selftests pass and the two-CPU ones skip with their reason (QEMU exits 0<<1|1).
TEST(GuestKernelQemu, SelftestsWithOneVcpuPassOrSkipAsExpected) {
  REQUIRE_QEMU();
  RunResult r = run_qemu(best_accel(), 1, "selftest=all");
  expect_selftests(r, kSkipsWithOneCpu);
  EXPECT_EQ(r.status, 1) << r.out;
}

// Under QEMU microvm with two vCPUs (KVM, or TCG) every selftest passes and none skips.
TEST(GuestKernelQemu, SelftestsPassWithTwoVcpus) {
  REQUIRE_QEMU();
  RunResult r = run_qemu(best_accel(), 2, "selftest=all");
  expect_selftests(r, kSkipsWithTwoCpus);
  EXPECT_NE(r.out.find("selftest smp: ok - 2 CPUs"), std::string::npos) << r.out;
  EXPECT_EQ(r.status, 1) << r.out;
}

// The control service's selftests (scripted requests, no device) pass under QEMU with two
// vCPUs, and kTlbFlush of everything reaches both.
TEST(GuestKernelQemu, ControlServiceSelftestsPass) {
  REQUIRE_QEMU();
  RunResult r = run_qemu(best_accel(), 2,
                         "selftest=control_requests,control_workloads,control_hold,control_tlb");
  ASSERT_FALSE(r.timed_out) << r.out;
  EXPECT_NE(r.out.find("selftests: 4 run, 4 passed, 0 failed, 0 skipped"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("selftest control_tlb: ok - 2 CPUs for kKernelAll"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.status, 1) << r.out;  // QEMU: (0 << 1) | 1
}

// The pattern workloads from the command line: both page orders give the checksum of the
// documented pattern (seed 5, 256 pages: computed outside the guest from the formula in
// guest/kernel/README.md), and a different size gives another.
TEST(GuestKernelQemu, PatternWorkloadsMatchTheDocumentedChecksum) {
  REQUIRE_QEMU();
  RunResult r = run_qemu(best_accel(), 1,
                         "workload=pattern_seq:1M,pattern_random:1M,pattern_random:1000K seed=5");
  ASSERT_FALSE(r.timed_out) << r.out;
  EXPECT_NE(
      r.out.find("workload pattern_seq: ok 256 pages, 0 mismatched, checksum 0141496be1cd4725"),
      std::string::npos)
      << r.out;
  EXPECT_NE(
      r.out.find("workload pattern_random: ok 256 pages, 0 mismatched, checksum 0141496be1cd4725"),
      std::string::npos)
      << r.out;
  EXPECT_NE(
      r.out.find("workload pattern_random: ok 250 pages, 0 mismatched, checksum 7c83eee5abbb8125"),
      std::string::npos)
      << r.out;
  EXPECT_EQ(r.status, 1) << r.out;
}

// The checksum the guest reports for `pages` pages of the mix of `seed`: every word of
// hvmm/base/pattern_mix.h folded in page order as the pattern check folds (FNV-1a over
// 64-bit words).
uint64_t mix_checksum(uint64_t seed, uint64_t pages) {
  uint64_t checksum = 0xcbf29ce484222325ull;
  for (uint64_t page = 0; page < pages; ++page)
    for (uint64_t i = 0; i < hvmm::pattern::kPageWords; ++i)
      checksum = (checksum ^ hvmm::pattern::mix_word(seed, page, i)) * 0x100000001b3ull;
  return checksum;
}

// The guest's line for a mix workload of `pages` pages of seed 5 that matched.
std::string mix_line(uint64_t pages) {
  char checksum[17];
  std::snprintf(checksum, sizeof(checksum), "%016llx",
                static_cast<unsigned long long>(mix_checksum(5, pages)));
  return "workload pattern_mix: ok " + std::to_string(pages) + " pages, 0 mismatched, checksum " +
         checksum;
}

// The mix workload from the command line writes hvmm/base/pattern_mix.h word for word: its
// checksum equals the one computed here from the header, for 2048 pages (which hold every
// kind of page and every phrase, checked first) and for 250.
TEST(GuestKernelQemu, PatternMixMatchesTheHeader) {
  REQUIRE_QEMU();
  std::map<hvmm::pattern::MixKind, unsigned> kinds;
  std::map<uint64_t, unsigned> phrases;
  for (uint64_t page = 0; page < 2048; ++page) {
    const uint64_t base = hvmm::pattern::page_base(5, page);
    kinds[hvmm::pattern::mix_kind(base)] += 1;
    if (hvmm::pattern::mix_kind(base) == hvmm::pattern::MixKind::kText)
      phrases[(base >> 3) & 7] += 1;
  }
  ASSERT_EQ(kinds.size(), 3u);
  ASSERT_EQ(phrases.size(), 8u);
  ASSERT_NE(mix_checksum(5, 250), mix_checksum(5, 2048));
  RunResult r = run_qemu(best_accel(), 1, "workload=pattern_mix:8M,pattern_mix:1000K seed=5");
  ASSERT_FALSE(r.timed_out) << r.out;
  EXPECT_NE(r.out.find(mix_line(2048)), std::string::npos) << mix_line(2048) << "\n" << r.out;
  EXPECT_NE(r.out.find(mix_line(250)), std::string::npos) << mix_line(250) << "\n" << r.out;
  EXPECT_EQ(r.status, 1) << r.out;  // QEMU: (0 << 1) | 1
}

// Under TCG, whose TLB keeps stale entries, the shootdown selftest passes with the IPIs;
// when they are skipped it fails on both counts: CPU 1 reads the old frame through its stale
// translation, and CPU 1 has no record of flushing the page.
TEST(GuestKernelQemuTcg, StaleTranslationCaughtOnlyWithoutShootdown) {
  REQUIRE_QEMU();
  RunResult ok = run_qemu(Accel::kTcg, 2, "selftest=smp,tlb_shootdown,tlb_batch");
  ASSERT_FALSE(ok.timed_out) << ok.out;
  EXPECT_NE(ok.out.find("selftest tlb_shootdown: ok - CPU 1 flushed the page for gen"),
            std::string::npos)
      << ok.out;
  EXPECT_NE(ok.out.find("selftests: 3 run, 3 passed, 0 failed, 0 skipped"), std::string::npos)
      << ok.out;
  EXPECT_EQ(ok.status, 1) << ok.out;
  RunResult stale = run_qemu(Accel::kTcg, 2, "selftest=tlb_shootdown tlb_skip_shootdown");
  ASSERT_FALSE(stale.timed_out) << stale.out;
  std::string expected_failure = std::string(kStaleRead) + kNoRemoteRecord;
  EXPECT_NE(stale.out.find(expected_failure), std::string::npos) << stale.out;
  EXPECT_NE(stale.out.find(kSkippedOnPurpose), std::string::npos) << stale.out;
  EXPECT_NE(stale.out.find("selftests: 1 run, 0 passed, 1 failed, 0 skipped"), std::string::npos)
      << stale.out;
  EXPECT_EQ(stale.status, 3) << stale.out;  // QEMU: (1 << 1) | 1
}

}  // namespace
