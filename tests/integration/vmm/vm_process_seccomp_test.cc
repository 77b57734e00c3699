// The VM process's seccomp filter under KVM: a forbidden system call kills only the VM
// process that made it (SIGSYS) while another keeps serving, and every system call a VM
// process makes in its whole life (traced with strace -f, the filter off) is on the
// allow-list (daemon/vmproc/seccomp_filter.cc), which is how the list was found.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "hvmm/daemon/vmproc/seccomp_filter.h"
#include "vm_process_scenario.h"

namespace hvmm::testing {
namespace {

constexpr const char* kStrace = "/usr/bin/strace";
// What the VM process prints just before the point where it would load the filter.
constexpr const char* kSeccompOffMarker = "hvmm-vm: seccomp off";

// Two VM processes; the one told to make a forbidden call (once built and sandboxed) dies of
// SIGSYS, the other still answers and shuts down normally.
TEST(VmProcessSeccomp, ForbiddenSyscallKillsOnlyThatVm) {
  HVMM_SKIP_WITHOUT_VM_PROCESS();
  VmProcessHarness healthy;
  VmProcessHarness doomed({"--test-forbidden-syscall"});
  ASSERT_NO_FATAL_FAILURE(launch_and_wait_started(healthy, guest_kernel_launch("healthy", 11)));
  // The doomed one may die before its writer got Started out: its SIGSYS is the proof the
  // filter was loaded, which happens only once the VM is built.
  ASSERT_TRUE(doomed.launch(guest_kernel_launch("doomed", 12)).ok());
  const VmProcessExit killed = doomed.wait_exit(kExitTimeout);
  EXPECT_FALSE(killed.exited) << "status " << killed.status << "\n" << doomed.output();
  EXPECT_EQ(killed.signal, SIGSYS) << doomed.output();
  EXPECT_EQ(doomed.output().find("was allowed"), std::string::npos) << doomed.output();
  auto stats = healthy.call(stats_request(), kRequestTimeout);
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(stats->code(), kOk) << stats->message();
  ASSERT_NO_FATAL_FAILURE(wait_for_guest(healthy));
  ASSERT_NO_FATAL_FAILURE(shut_down(healthy, 3));
}

// The system call names of an `strace -f -o` file after the line holding `marker`, counted
// (resumed and unfinished halves count once, signals and exits not at all).
std::map<std::string, uint64_t> syscalls_after(const std::string& trace,
                                               const std::string& marker) {
  static const std::regex call(R"(^(?:\[pid\s+)?\d*\]?\s*([a-z0-9_]+)\()");
  std::map<std::string, uint64_t> seen;
  std::istringstream lines(trace);
  bool after = false;
  for (std::string line; std::getline(lines, line);) {
    if (!after) {
      after = line.find(marker) != std::string::npos;
      continue;
    }
    std::smatch match;
    if (std::regex_search(line, match, call)) {
      ++seen[match[1]];
    }
  }
  return seen;
}

// The lines after `marker` that contain `needle`.
std::vector<std::string> lines_after(const std::string& trace, const std::string& marker,
                                     const std::string& needle) {
  std::vector<std::string> found;
  std::istringstream lines(trace);
  bool after = false;
  for (std::string line; std::getline(lines, line);) {
    after = after || line.find(marker) != std::string::npos;
    if (after && line.find(needle) != std::string::npos) {
      found.push_back(line);
    }
  }
  return found;
}

// The whole life under strace (seccomp off, so the trace sees everything): every call after
// the point the filter would be loaded is on the allow-list.
TEST(VmProcessSeccomp, WholeLifeNeedsOnlyAllowedSyscalls) {
  HVMM_SKIP_WITHOUT_VM_PROCESS();
  if (::access(kStrace, X_OK) != 0) {
    GTEST_SKIP() << kStrace << " is missing (apt-get install strace)";
  }
  TempPath trace("strace");
  TempPath swap("swap");
  {
    VmProcessHarness vm({}, {kStrace, "-f", "-qq", "-o", trace.path, "--"});
    supervisor::Launch launch = whole_life_launch(swap.path);
    launch.set_seccomp(false);
    whole_life(vm, launch);
  }
  const std::string text = slurp(trace.path);
  ASSERT_NE(text.find(kSeccompOffMarker), std::string::npos) << "no marker in the trace";
  const auto seen = syscalls_after(text, kSeccompOffMarker);
  ASSERT_FALSE(seen.empty());
  std::string listing;
  for (const auto& [name, count] : seen) {
    listing +=
        fmt::format(" {}{}={}", name, daemon::vmproc::syscall_allowed(name) ? "" : "(!)", count);
    EXPECT_TRUE(daemon::vmproc::syscall_allowed(name))
        << name << " (" << count << " calls) is not on the allow-list";
  }
  std::printf("system calls of a VM process's life after the filter point:%s\n", listing.c_str());
  for (const std::string& line : lines_after(text, kSeccompOffMarker, " openat(")) {
    std::printf("  %s\n", line.c_str());  // what is opened, for the README's reasons
  }
}

}  // namespace
}  // namespace hvmm::testing
