// Integration tests of guest RAM filled lazily by hvmm's userfaultfd handler under real KVM:
// the bundled guest kernel runs a ring-3 workload that touches 32 MiB of a 256 MiB guest,
// and the --stats file shows the faults the handler resolved and a host RSS near what was
// touched, not the guest's RAM size (issue 8, "Must show" 3).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

using testing::run_hvmm;
using testing::RunResult;
using testing::slurp;
using testing::TempPath;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kGuestRam = 256 * kMiB;
constexpr uint64_t kTouched = 32 * kMiB;
// What the guest holds besides the workload's pages (kernel image, its page tables, struct
// pages, slab): generous, and still far below the guest's RAM.
constexpr uint64_t kGuestOverhead = 48 * kMiB;

// The number after the last of `keys`, each looked for after the previous one in the
// one-line JSON object `json` (enough for the fixed layout of --stats); -1 when missing.
int64_t number_at(const std::string& json, const std::vector<std::string>& keys) {
  size_t at = 0;
  for (const std::string& key : keys) {
    at = json.find("\"" + key + "\":", at);
    if (at == std::string::npos)
      return -1;
    at += key.size() + 3;
  }
  return std::strtoll(json.c_str() + at, nullptr, 10);
}

// Boot the guest kernel with `workload=touch_seq:32M` and `extra` options; the --stats text.
std::string run_touch_workload(const std::vector<std::string>& extra) {
  TempPath stats("stats");
  std::vector<std::string> args = {
      "run", "--memory", "256M", "--cmdline", "workload=touch_seq:32M", "--stats", stats.path};
  args.insert(args.end(), extra.begin(), extra.end());
  RunResult run = run_hvmm(args, std::chrono::seconds(240));
  EXPECT_FALSE(run.timed_out) << run.out << run.err;
  EXPECT_NE(run.out.find("workload touch_seq: ok exit 0"), std::string::npos) << run.out;
  EXPECT_EQ(run.status, 0) << run.err;
  return slurp(stats.path);
}

#define SKIP_WITHOUT_GUEST_KERNEL()                                                    \
  do {                                                                                 \
    HVMM_SKIP_WITHOUT_KVM();                                                           \
    if (HVMM_BUNDLED_KERNEL_IS_HELLO)                                                  \
      GTEST_SKIP() << "the bundled kernel is the hello guest (no guest kernel build)"; \
  } while (false)

// With userfaultfd on (the default), first touches are the handler's missing faults, and a
// guest that touches 32 MiB of 256 MiB keeps its RAM in host memory near 32 MiB: lazy fill.
TEST(LazyFill, TouchingAFractionKeepsRssNearTheWorkingSet) {
  SKIP_WITHOUT_GUEST_KERNEL();
  const std::string stats = run_touch_workload({});
  ASSERT_FALSE(stats.empty()) << "no --stats output";
  EXPECT_EQ(number_at(stats, {"exit_status"}), 0) << stats;
  EXPECT_NE(stats.find("\"userfaultfd\":true"), std::string::npos) << stats;
  EXPECT_GT(number_at(stats, {"faults", "by_kind", "missing"}), 0) << stats;
  EXPECT_GE(number_at(stats, {"faults", "pages_filled"}), int64_t{kTouched / kPageSize}) << stats;
  const int64_t shmem = number_at(stats, {"host", "rss_shmem_bytes"});
  const int64_t allocated = number_at(stats, {"memfd_allocated_bytes"});
  EXPECT_GE(shmem, int64_t{kTouched}) << stats;
  EXPECT_LT(shmem, int64_t{kTouched + kGuestOverhead}) << stats;
  EXPECT_LT(allocated, int64_t{kTouched + kGuestOverhead}) << stats;
  EXPECT_LT(allocated, int64_t{kGuestRam / 2}) << stats;
  EXPECT_EQ(number_at(stats, {"pages", "resident"}), int64_t{kGuestRam / kPageSize}) << stats;
}

// With --fault-around 0 every fault fills exactly one page, so there are at least as many
// missing faults as pages the workload touched.
TEST(LazyFill, NoFaultAroundIsOnePagePerFault) {
  SKIP_WITHOUT_GUEST_KERNEL();
  const std::string stats = run_touch_workload({"--fault-around", "0"});
  ASSERT_FALSE(stats.empty()) << "no --stats output";
  EXPECT_EQ(number_at(stats, {"fault_around_max"}), 0) << stats;
  const int64_t missing = number_at(stats, {"faults", "by_kind", "missing"});
  EXPECT_GE(missing, int64_t{kTouched / kPageSize}) << stats;
  EXPECT_EQ(number_at(stats, {"faults", "pages_filled"}),
            number_at(stats, {"faults", "by_kind_and_resolution", "missing", "zero-fill"}))
      << stats;
}

// With --userfaultfd off the host kernel fills first touches: the handler counts nothing,
// and the guest still runs its workload.
TEST(LazyFill, UserfaultfdOffLeavesFirstTouchesToTheKernel) {
  SKIP_WITHOUT_GUEST_KERNEL();
  const std::string stats = run_touch_workload({"--userfaultfd", "off"});
  ASSERT_FALSE(stats.empty()) << "no --stats output";
  EXPECT_NE(stats.find("\"userfaultfd\":false"), std::string::npos) << stats;
  EXPECT_EQ(number_at(stats, {"faults", "by_kind", "missing"}), 0) << stats;
  EXPECT_GE(number_at(stats, {"host", "rss_shmem_bytes"}), int64_t{kTouched}) << stats;
}

}  // namespace
}  // namespace hvmm::vmm
