// Integration tests of guest faults under real KVM: accesses to unbacked IPAs are answered
// and logged while the guest keeps running; a triple fault stops the VM with a dump.
#include <cpuid.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <regex>

#include "hvmm/vmm/machine/exit_status.h"
#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

using testing::guest;
using testing::run_hvmm;
using testing::RunResult;
using testing::slurp;
using testing::TempPath;

// Split text into lines.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream stream(text);
  std::string line;
  while (std::getline(stream, line)) {
    lines.push_back(line);
  }
  return lines;
}

// A read of an unbacked IPA returns all-ones, a write is dropped, the guest continues, and
// each access is one JSON fault record with the IPA, access and size.
TEST(Faults, UnbackedIpaIsAnsweredAndLogged) {
  HVMM_SKIP_WITHOUT_KVM();
  TempPath log("faults");
  RunResult run = run_hvmm({"run", "--kernel", guest("unbacked"), "--fault-log", log.path});
  EXPECT_EQ(run.out, "read ffffffff\nafter write ffffffff\nstill running\n");
  EXPECT_EQ(run.status, 0) << run.err;
  auto records = lines_of(slurp(log.path));
  ASSERT_EQ(records.size(), 3u) << slurp(log.path);
  const char* expected[3][3] = {{"0xc0000000", "read", "read-all-ones"},
                                {"0xc0000010", "write", "write-dropped"},
                                {"0xc0000010", "read", "read-all-ones"}};
  std::regex shape(
      R"re(\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z","vm":"run","vmid":1,"vcpu":0,)re"
      R"re("ipa":"(0x[0-9a-f]+)","access":"(\w+)","size":4,"kind":"unbacked",)re"
      R"re("resolution":"([\w-]+)","latency_ns":\d+\})re");
  for (size_t i = 0; i < 3; ++i) {
    std::smatch match;
    ASSERT_TRUE(std::regex_match(records[i], match, shape)) << records[i];
    EXPECT_EQ(match[1], expected[i][0]);
    EXPECT_EQ(match[2], expected[i][1]);
    EXPECT_EQ(match[3], expected[i][2]);
  }
}

// Without --fault-log the records go to stderr.
TEST(Faults, FaultLogDefaultsToStderr) {
  HVMM_SKIP_WITHOUT_KVM();
  RunResult run = run_hvmm({"run", "--kernel", guest("unbacked")});
  EXPECT_EQ(run.status, 0);
  EXPECT_EQ(lines_of(run.err).size(), 3u) << run.err;
  EXPECT_NE(run.err.find("\"ipa\":\"0xc0000000\""), std::string::npos);
}

// How many times `needle` occurs in `text`.
size_t count_of(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

// The CPU vendor string of CPUID leaf 0 ("GenuineIntel", "AuthenticAMD", ...).
std::string cpu_vendor() {
  unsigned int max_leaf = 0, ebx = 0, ecx = 0, edx = 0;
  __get_cpuid(0, &max_leaf, &ebx, &ecx, &edx);
  char vendor[13] = {};
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  return vendor;
}

// Whether /dev/kvm is AMD SVM's KVM (kvm_amd on an AMD or Hygon CPU). Its
// shutdown_interception() clears the VMCB and resets the vCPU before it reports
// KVM_EXIT_SHUTDOWN (the VMCB is undefined after a shutdown intercept), so the registers
// hvmm reads afterwards are the reset state, not the guest's. VMX, and KVM's generic
// triple-fault path that other backends (such as PVM) use, report the guest's state.
bool kvm_resets_vcpu_on_shutdown() {
  std::string vendor = cpu_vendor();
  bool svm_vendor = vendor == "AuthenticAMD" || vendor == "HygonGenuine";
  return svm_vendor && ::access("/sys/module/kvm_amd", F_OK) == 0;
}

// A triple fault ends the VM with status 122 and a register dump: the guest's marker values
// and faulting state where KVM keeps them (Intel VMX), the architectural reset state (RIP
// 0xfff0, CS base 0xffff0000) where KVM resets the vCPU first (AMD SVM).
TEST(Faults, TripleFaultDumpsRegisters) {
  HVMM_SKIP_WITHOUT_KVM();
  RunResult run = run_hvmm({"run", "--kernel", guest("triple_fault")});
  EXPECT_EQ(run.out, "about to triple fault\n");
  EXPECT_EQ(run.status, kExitTripleFault);
  EXPECT_NE(run.err.find("vCPU 0: triple fault (KVM_EXIT_SHUTDOWN)"), std::string::npos) << run.err;
  if (kvm_resets_vcpu_on_shutdown()) {
    EXPECT_NE(run.err.find("rip=0x000000000000fff0"), std::string::npos) << run.err;
    EXPECT_NE(run.err.find(" cs=0xf000 base=0x00000000ffff0000"), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("idt=0x0/0xffff"), std::string::npos) << run.err;
    EXPECT_EQ(run.err.find("rax=0x00000000deadbeef"), std::string::npos)
        << "the guest's state survived KVM_EXIT_SHUTDOWN on SVM: check the Intel markers here "
           "too\n"
        << run.err;
    return;
  }
  EXPECT_NE(run.err.find("rax=0x00000000deadbeef"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("rcx=0x00000000c0ffee00"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("rdi=0x000000000badf00d"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("idt=0x0/0x0"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("cr0=0x11"), std::string::npos) << run.err;
}

// The VMM says, in exactly one line and last, that it ended the VM and why.
TEST(Faults, TripleFaultAnnouncedOnceAsVmmEnd) {
  HVMM_SKIP_WITHOUT_KVM();
  RunResult run = run_hvmm({"run", "--kernel", guest("triple_fault")});
  EXPECT_EQ(run.status, kExitTripleFault);
  const std::string line =
      "hvmm: VM ended by the VMM: triple fault (KVM_EXIT_SHUTDOWN) on vCPU 0 (exit status 122)\n";
  EXPECT_EQ(count_of(run.err, "VM ended by the VMM"), 1u) << run.err;
  ASSERT_GE(run.err.size(), line.size()) << run.err;
  EXPECT_EQ(run.err.substr(run.err.size() - line.size()), line) << run.err;
}

// A guest that writes 122 itself exits 122, and hvmm does not claim the VM's end.
TEST(Faults, GuestExitWithVmmCodeIsNotAnnounced) {
  HVMM_SKIP_WITHOUT_KVM();
  RunResult run = run_hvmm({"run", "--kernel", guest("exit_122")});
  EXPECT_EQ(run.out, "exiting with 122\n");
  EXPECT_EQ(run.status, 122);
  EXPECT_EQ(count_of(run.err, "VM ended by the VMM"), 0u) << run.err;
  EXPECT_EQ(run.err, "") << run.err;
}

// The exit_122 guest really is a guest exit: its image is a valid PVH kernel that hvmm
// accepts (checked without KVM, so this half runs everywhere).
TEST(Faults, ExitGuestIsAcceptedWithoutKvm) {
  std::string reason = testing::kvm_unavailable_reason();
  if (reason.empty()) {
    GTEST_SKIP() << "KVM is available: GuestExitWithVmmCodeIsNotAnnounced runs the guest";
  }
  RunResult run = run_hvmm({"run", "--kernel", guest("exit_122")});
  EXPECT_EQ(run.status, kExitSetupFailed) << run.err;
}

// Fetching instructions from an unbacked IPA is a KVM internal error: status 123 and a
// register dump with RIP at the unbacked address.
TEST(Faults, InstructionFetchFromUnbackedIpaIsInternalError) {
  HVMM_SKIP_WITHOUT_KVM();
  RunResult run = run_hvmm({"run", "--kernel", guest("bad_fetch")});
  EXPECT_EQ(run.out, "jumping to unbacked memory\n");
  EXPECT_EQ(run.status, kExitInternalError);
  EXPECT_NE(run.err.find("vCPU 0: KVM internal error"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("rip=0x00000000c0000000"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace hvmm::vmm
