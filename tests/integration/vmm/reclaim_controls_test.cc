// Integration tests of the Machine's reclaim controls under KVM: the bundled guest kernel
// runs with reclaim (whose engine is then KVM's dirty log's only harvester), one VM for the
// suite. Epochs run on request and reclaim the idle workload's pages, which come back intact;
// a policy change takes effect at the next epoch and refuses what is fixed while the VM runs;
// the dirty log a client takes is what the engine harvested and published, the probed pages
// in it; a stage-2 shootdown with reclaim running waits for an epoch and loses nothing.
// Nothing here asserts a time (nested KVM is slow).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <set>
#include <string>

#include "guest_kernel_suite.h"
#include "guest_kernel_vm.h"
#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

using std::chrono::seconds;
using testing::GuestKernelVm;
using testing::GuestKernelVmOptions;
using testing::kMiB;

constexpr uint64_t kMemory = 128 * kMiB;
constexpr uint64_t kWorkloadPages = 2048;  // 8 MiB held
constexpr seconds kWorkloadTimeout{120};
constexpr seconds kRequestTimeout{30};
constexpr uint64_t kScratchBase = 0x30000;  // reserved low memory the kernel leaves alone

// Epochs of 1 h on the service thread: only the tests' own epochs run (and the policy can
// be changed between them without racing the engine's).
ReclaimPolicy initial_policy() {
  auto policy = parse_reclaim_policy("period=3600s,cold=50,budget=off");
  EXPECT_TRUE(policy.ok());
  return policy ? *policy : ReclaimPolicy{};
}

class ReclaimControls : public testing::GuestKernelSuite<ReclaimControls> {
 public:
  static GuestKernelVmOptions vm_options() {
    GuestKernelVmOptions options;
    options.memory = kMemory;
    options.reclaim = initial_policy();
    return options;
  }
};

// Lowered to cold=1, three epochs on request reclaim most of the idle workload (and the
// kernel's idle pages), counted between before and after; the workload then verifies from
// the pool.
TEST_F(ReclaimControls, EpochsOnRequestReclaimAndLoseNothing) {
  auto touched = vm_->touch(kWorkloadPages * kPageSize, 21, /*hold=*/true, kWorkloadTimeout);
  ASSERT_TRUE(touched.ok()) << touched.error().message << "\nconsole:\n" << console();
  ReclaimPolicy cold = initial_policy();
  cold.cold_epochs = 1;
  ASSERT_TRUE(machine().set_reclaim_policy(cold).ok());
  EXPECT_EQ(machine().reclaim_engine()->policy().cold_epochs, 50u) << "before the next epoch";
  auto run = machine().reclaim_now(3);
  ASSERT_TRUE(run.ok()) << run.error().message;
  EXPECT_EQ(machine().reclaim_engine()->policy().cold_epochs, 1u);
  EXPECT_EQ(run->after.epochs, run->before.epochs + 3);
  const uint64_t reclaimed = run->after.reclaimed_pages - run->before.reclaimed_pages;
  EXPECT_GE(reclaimed, kWorkloadPages / 2) << "the idle workload was not reclaimed";
  EXPECT_GT(run->duration_ns, 0u);
  auto verified = vm_->verify(touched->workload, kWorkloadTimeout);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(verified->mismatched_pages, 0u);
  EXPECT_EQ(verified->checksum, touched->checksum);
  EXPECT_GT(machine().reclaim_engine()->stats().refaults, 0u);
  std::printf("reclaim now: 3 epochs reclaimed %llu pages in %llu ns; verify refaulted %llu\n",
              static_cast<unsigned long long>(reclaimed),
              static_cast<unsigned long long>(run->duration_ns),
              static_cast<unsigned long long>(machine().reclaim_engine()->stats().refaults));
  ASSERT_TRUE(vm_->exit_workload(touched->workload, kRequestTimeout).ok());
  ASSERT_TRUE(machine().set_reclaim_policy(initial_policy()).ok());
}

// Out-of-range epoch counts and changes of what is fixed are refused, naming the field.
TEST_F(ReclaimControls, BadRequestsAreRefused) {
  for (unsigned epochs : {0u, 101u}) {
    auto run = machine().reclaim_now(epochs);
    ASSERT_FALSE(run.ok()) << epochs;
    EXPECT_EQ(run.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(run.error().message.rfind("epochs: ", 0), 0u) << run.error().message;
  }
  ReclaimPolicy zstd = initial_policy();
  zstd.codec = Codec::kZstd;
  auto codec = machine().set_reclaim_policy(zstd);
  ASSERT_FALSE(codec.ok());
  EXPECT_NE(codec.error().message.find("codec=zstd"), std::string::npos) << codec.error().message;
  ReclaimPolicy bad = initial_policy();
  bad.cold_epochs = 0;
  EXPECT_FALSE(machine().set_reclaim_policy(bad).ok());
  auto changed = parse_reclaim_policy("cold=7", machine().reclaim_engine()->policy());
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(machine().set_reclaim_policy(*changed).ok()) << "a change over the running policy";
  ASSERT_TRUE(machine().set_reclaim_policy(initial_policy()).ok());
}

// With reclaim, the dirty log is what the engine harvests: the probed pages are in it, each
// once, and the engine saw them written (they are young).
TEST_F(ReclaimControls, DirtyLogComesFromTheEngine) {
  ASSERT_TRUE(machine().take_dirty_log(all_ram()).ok());
  ASSERT_TRUE(machine().take_dirty_log(all_ram()).ok());
  const uint64_t epochs = machine().reclaim_engine()->stats().epochs;
  std::set<uint64_t> written;
  for (uint64_t i = 0; i < 12; ++i) {
    const uint64_t ipa = kScratchBase + i * 2 * kPageSize;
    ASSERT_TRUE(vm_->probe(ipa, true, static_cast<uint32_t>(i + 1), kRequestTimeout).ok());
    written.insert(ipa / kPageSize);
  }
  auto log = machine().take_dirty_log(IpaRange{Ipa(0), kMiB});
  ASSERT_TRUE(log.ok()) << log.error().message;
  std::set<uint64_t> logged;
  for (const IpaRange& run : log->dirty) {
    for (uint64_t p = run.start.page_number(); p < run.end().page_number(); ++p) {
      EXPECT_TRUE(logged.insert(p).second) << "page " << p << " twice";
    }
  }
  for (uint64_t page : written) {
    EXPECT_EQ(logged.count(page), 1u) << "probed page " << page << " not in the log";
    EXPECT_EQ(machine().reclaim_engine()->idle_epochs(Ipa(page * kPageSize)), 0u);
  }
  EXPECT_EQ(machine().reclaim_engine()->stats().epochs, epochs) << "a harvest is not an epoch";
}

// A shootdown while reclaim runs: the held workload survives it and an epoch after it.
TEST_F(ReclaimControls, ShootdownWithReclaimLosesNothing) {
  auto touched = vm_->touch(kWorkloadPages * kPageSize, 33, /*hold=*/true, kWorkloadTimeout);
  ASSERT_TRUE(touched.ok()) << touched.error().message;
  auto shot = machine().shootdown_stage2(all_ram());
  ASSERT_TRUE(shot.ok()) << shot.error().message;
  ASSERT_TRUE(machine().reclaim_now(1).ok());
  auto verified = vm_->verify(touched->workload, kWorkloadTimeout);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(verified->mismatched_pages, 0u);
  EXPECT_EQ(verified->checksum, touched->checksum);
  ASSERT_TRUE(vm_->exit_workload(touched->workload, kRequestTimeout).ok());
}

}  // namespace
}  // namespace hvmm::vmm
