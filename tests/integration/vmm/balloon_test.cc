// Integration tests of the balloon under KVM: the bundled guest kernel with 256 MiB runs in
// this process, the test drives it through the control channel (ring-3 pattern workloads,
// memory statistics) and the Machine's balloon API, and reads this process's RssShmem, the
// guest RAM the host really holds. Guest memory goes back to the host through inflate and
// free page reporting, and comes back intact (the pattern verifies) after a deflate.
// Guest first touches are slow under nested KVM (~270 us/page): deadlines are generous and
// nothing here asserts a time.
#include <gtest/gtest.h>

#include <chrono>

#include "guest_kernel_vm.h"
#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

using stage2::Backing;
using std::chrono::seconds;
using testing::GuestKernelVm;
using testing::GuestKernelVmOptions;
using testing::kMiB;
using testing::rss_shmem;
using testing::TempPath;

constexpr uint64_t kWorkloadBytes = 192 * kMiB;
constexpr uint64_t kWorkloadPages = kWorkloadBytes / kPageSize;
constexpr seconds kBootTimeout{90};
constexpr seconds kWorkloadTimeout{120};
constexpr seconds kBalloonTimeout{90};
constexpr seconds kRequestTimeout{30};

#define HVMM_SKIP_WITHOUT_GUEST_KERNEL()                                       \
  do {                                                                         \
    HVMM_SKIP_WITHOUT_KVM();                                                   \
    std::string why = ::hvmm::vmm::testing::guest_kernel_unavailable_reason(); \
    if (!why.empty()) {                                                        \
      GTEST_SKIP() << why;                                                     \
    }                                                                          \
  } while (false)

// A booted guest kernel (it answered a ping), its console kept in a temporary file.
struct BalloonTest : ::testing::Test {
  void boot(GuestKernelVmOptions options) {
    options.console_log = console.path;
    auto started = GuestKernelVm::start(options);
    ASSERT_TRUE(started.ok()) << started.error().message;
    vm = std::move(*started);
    auto pinged = vm->ping(kBootTimeout);
    ASSERT_TRUE(pinged.ok()) << pinged.error().message << "\nconsole:\n" << console_text();
  }
  // Shut the guest down with status 0 and expect the VM to end with it.
  void shut_down() {
    auto status = vm->shut_down(0, kRequestTimeout);
    ASSERT_TRUE(status.ok()) << status.error().message;
    EXPECT_EQ(*status, 0) << console_text();
  }
  std::string console_text() { return testing::slurp(console.path); }
  uint64_t ballooned_pages() { return vm->machine().physical().page_counts()[Backing::kBallooned]; }

  TempPath console{"balloon-console"};
  std::unique_ptr<GuestKernelVm> vm;
};

// The host recomputes the guest kernel's workload checksum (its README's reference value).
TEST(BalloonPattern, HostChecksumMatchesTheGuestKernelsReference) {
  EXPECT_EQ(testing::pattern_checksum(5, 256), 0x0141496be1cd4725ull);
}

// Must-show 1: a 192 MiB workload runs and exits; inflating the balloon to 192 MiB gives at
// least 120 MiB of RSS back, at least 130 MiB of what it took had been touched; after a
// deflate a second 192 MiB workload writes and verifies its pattern intact.
TEST_F(BalloonTest, InflateReleasesTouchedMemoryAndDeflateGivesItBack) {
  HVMM_SKIP_WITHOUT_GUEST_KERNEL();
  ASSERT_NO_FATAL_FAILURE(boot({}));
  auto first = vm->touch(kWorkloadBytes, 11, false, kWorkloadTimeout);
  ASSERT_TRUE(first.ok()) << first.error().message << "\nconsole:\n" << console_text();
  EXPECT_EQ(first->pages, kWorkloadPages);
  EXPECT_EQ(first->checksum, testing::pattern_checksum(11, kWorkloadPages));
  const uint64_t peak = rss_shmem();
  ASSERT_GE(peak, kWorkloadBytes) << "the workload's pages should be in RssShmem";

  auto inflated = vm->balloon_to(kWorkloadBytes, kBalloonTimeout);
  ASSERT_TRUE(inflated.ok()) << inflated.error().message << "\nconsole:\n" << console_text();
  const uint64_t after_inflate = rss_shmem();
  EXPECT_GE(peak - std::min(peak, after_inflate), 120 * kMiB)
      << "peak " << peak << " after inflate " << after_inflate;
  // The map holds exactly the balloon's pages, and the backend saw what they held: pages the
  // first workload had touched (allocated in the memfd just before the inflate).
  EXPECT_EQ(ballooned_pages(), kWorkloadPages);
  GuestPhysicalBalloonBackend* backend = vm->machine().devices().balloon_backend();
  ASSERT_NE(backend, nullptr);
  const BalloonBackendStats released = backend->stats();
  EXPECT_GE(released.inflated_allocated_bytes, 130 * kMiB);
  EXPECT_EQ(released.ballooned_pages, kWorkloadPages);
  EXPECT_EQ(released.failed_runs, 0u);
  auto statistics = vm->machine().balloon_statistics();
  ASSERT_TRUE(statistics.has_value());
  EXPECT_EQ(statistics->actual_pages, kWorkloadPages);
  EXPECT_EQ(statistics->backend_failures, 0u);

  auto deflated = vm->balloon_to(0, kBalloonTimeout);
  ASSERT_TRUE(deflated.ok()) << deflated.error().message;
  EXPECT_EQ(ballooned_pages(), 0u);
  EXPECT_EQ(vm->machine().physical().page_counts(), vm->machine().physical().count_pages_by_walk());

  auto second = vm->touch(kWorkloadBytes, 23, true, kWorkloadTimeout);
  ASSERT_TRUE(second.ok()) << second.error().message << "\nconsole:\n" << console_text();
  const uint64_t expected = testing::pattern_checksum(23, kWorkloadPages);
  EXPECT_EQ(second->checksum, expected);
  auto verified = vm->verify(second->workload, kWorkloadTimeout);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(verified->pages, kWorkloadPages);
  EXPECT_EQ(verified->mismatched_pages, 0u);
  EXPECT_EQ(verified->checksum, expected);
  ASSERT_TRUE(vm->exit_workload(second->workload, kRequestTimeout).ok());
  shut_down();
}

// Must-show 2: with free page reporting alone (no balloon target), the guest reports the
// blocks a 192 MiB workload freed, and RssShmem drops by at least 120 MiB from its peak.
TEST_F(BalloonTest, FreePageReportingReleasesAnExitedWorkload) {
  HVMM_SKIP_WITHOUT_GUEST_KERNEL();
  GuestKernelVmOptions options;
  options.free_page_reporting = true;
  options.cmdline = "page_reporting.delay_ms=100";
  ASSERT_NO_FATAL_FAILURE(boot(options));
  testing::RssSampler rss(120 * kMiB);
  auto workload = vm->touch(kWorkloadBytes, 3, false, kWorkloadTimeout);
  ASSERT_TRUE(workload.ok()) << workload.error().message << "\nconsole:\n" << console_text();
  const bool released = rss.wait(std::chrono::steady_clock::now() + seconds(60));
  EXPECT_GE(rss.peak(), 150 * kMiB) << "the workload's pages should have been in RssShmem";
  EXPECT_TRUE(released) << "peak " << rss.peak() << " now " << rss.latest();
  EXPECT_GE(rss.released(), 120 * kMiB) << "peak " << rss.peak() << " now " << rss.latest();
  EXPECT_EQ(ballooned_pages(), 0u);
  EXPECT_GE(vm->machine().physical().page_counts()[Backing::kReported], 120 * kMiB / kPageSize);
  auto statistics = vm->machine().balloon_statistics();
  ASSERT_TRUE(statistics.has_value());
  EXPECT_EQ(statistics->target_pages, 0u);
  EXPECT_GE(statistics->reported_pages, 120 * kMiB / kPageSize);
  auto stats = vm->mem_stats(kRequestTimeout);
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_GE(stats->reported, 120 * kMiB / kPageSize);
  shut_down();
}

// The target changes while the guest runs: 64 MiB, 128 MiB, 0, each reached; the device's
// statistics, the map and the guest's own kMemStats all agree on the balloon's size.
TEST_F(BalloonTest, TargetChangesWhileTheGuestRuns) {
  HVMM_SKIP_WITHOUT_GUEST_KERNEL();
  ASSERT_NO_FATAL_FAILURE(boot({}));
  for (uint64_t target : {64 * kMiB, 128 * kMiB, uint64_t{0}}) {
    SCOPED_TRACE(target);
    auto reached = vm->balloon_to(target, kBalloonTimeout);
    ASSERT_TRUE(reached.ok()) << reached.error().message << "\nconsole:\n" << console_text();
    const uint64_t pages = target / kPageSize;
    auto statistics = vm->machine().balloon_statistics();
    ASSERT_TRUE(statistics.has_value());
    EXPECT_EQ(statistics->target_pages, pages);
    EXPECT_EQ(statistics->actual_pages, pages);
    EXPECT_EQ(statistics->inflated_pages - statistics->deflated_pages, pages);
    EXPECT_EQ(ballooned_pages(), pages);
    auto stats = vm->mem_stats(kRequestTimeout);
    ASSERT_TRUE(stats.ok()) << stats.error().message;
    EXPECT_EQ(stats->balloon, pages);
  }
  shut_down();
}

}  // namespace
}  // namespace hvmm::vmm
