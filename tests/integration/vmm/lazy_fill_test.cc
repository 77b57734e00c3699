// Integration tests of guest RAM filled lazily by hvmm's userfaultfd handler under real KVM:
// a Machine boots the guest kernel with a ring-3 workload that touches 32 MiB of a 256 MiB
// guest, and the --stats file it writes at exit shows the faults the handler resolved and a
// host RSS near what was touched, not the guest's RAM size (issue 8, "Must show" 3). The VM
// has no control channel, so the guest kernel exits once its workload is done.
#include <gtest/gtest.h>

#include <cstdlib>
#include <future>
#include <iostream>
#include <string>
#include <vector>

#include "hvmm/vmm/boot/input_file.h"
#include "hvmm/vmm/host/log_file.h"
#include "hvmm/vmm/machine/machine.h"
#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

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

// What one run of the workload left: its exit status, console and --stats text.
struct WorkloadRun {
  int status = -1;
  std::string console;
  std::string stats;
};

// Build a 256 MiB Machine with the guest kernel, `workload=touch_seq:32M` and `faults`, its
// console and --stats in files; run it (stopped after 100 s) and collect what it left.
WorkloadRun run_touch_workload(const FaultConfig& faults) {
  TempPath console("console");
  TempPath stats("stats");
  MachineConfig config;
  config.memory_size = kGuestRam;
  config.cmdline = "workload=touch_seq:32M";
  config.console_input = false;
  config.devices.control_channel = false;
  config.faults = faults;
  auto kernel = read_file(HVMM_GUEST_KERNEL_ELF, "--kernel", config.memory_size);
  EXPECT_TRUE(kernel.ok()) << kernel.error().message;
  auto console_log = open_log_file(console.path, "--console-log", LogOpenMode::kTruncate);
  auto stats_file = open_log_file(stats.path, "--stats", LogOpenMode::kTruncate);
  if (!kernel || !console_log || !stats_file) {
    return {};
  }
  config.kernel = std::move(*kernel);
  config.console_log = std::move(*console_log);
  config.stats_file = std::move(*stats_file);
  auto machine = Machine::create(std::move(config));
  EXPECT_TRUE(machine.ok()) << machine.error().message;
  if (!machine) {
    return {};
  }
  auto status = std::async(std::launch::async, [&] { return (*machine)->run(); });
  if (status.wait_for(std::chrono::seconds(100)) != std::future_status::ready) {
    (*machine)->request_stop(1, "the test gave up waiting for the guest");
  }
  WorkloadRun run;
  run.status = status.get();
  machine->reset();
  run.console = slurp(console.path);
  run.stats = slurp(stats.path);
  std::cout << "--stats: " << run.stats;  // the figures, for the record
  EXPECT_NE(run.console.find("workload touch_seq: ok exit 0"), std::string::npos) << run.console;
  EXPECT_EQ(run.status, 0) << run.console;
  return run;
}

#define SKIP_WITHOUT_GUEST_KERNEL()                                        \
  do {                                                                     \
    HVMM_SKIP_WITHOUT_KVM();                                               \
    if (std::string(HVMM_GUEST_KERNEL_ELF).empty())                        \
      GTEST_SKIP() << "the build has no guest kernel (hvmm_guest_kernel)"; \
  } while (false)

// With userfaultfd on (the default), first touches are the handler's missing faults, and a
// guest that touches 32 MiB of 256 MiB keeps its RAM in host memory near 32 MiB: lazy fill.
TEST(LazyFill, TouchingAFractionKeepsRssNearTheWorkingSet) {
  SKIP_WITHOUT_GUEST_KERNEL();
  const std::string stats = run_touch_workload(FaultConfig{}).stats;
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
  const std::string stats =
      run_touch_workload(FaultConfig{.userfaultfd = true, .fault_around_max = 0}).stats;
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
  const std::string stats = run_touch_workload(FaultConfig{.userfaultfd = false}).stats;
  ASSERT_FALSE(stats.empty()) << "no --stats output";
  EXPECT_NE(stats.find("\"userfaultfd\":false"), std::string::npos) << stats;
  EXPECT_EQ(number_at(stats, {"faults", "by_kind", "missing"}), 0) << stats;
  EXPECT_GE(number_at(stats, {"host", "rss_shmem_bytes"}), int64_t{kTouched}) << stats;
}

}  // namespace
}  // namespace hvmm::vmm
