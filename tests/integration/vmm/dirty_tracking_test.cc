// Integration tests of KVM dirty tracking (vmm/reclaim/dirty) under KVM, one per kind: the
// bundled guest kernel runs in this process with tracking on; a first harvest drains what
// boot wrote, a held ring-3 workload then writes N pages, and the next harvest must report
// at least those N pages (every page that became allocated in the memfd meanwhile among
// them) and at most a bounded number more for the kernel's own writes; once the guest idles
// a harvest reports far fewer. The ring's tests use a ring smaller than N, so its vCPU also
// meets KVM_EXIT_DIRTY_RING_FULL. Nothing here asserts a time (nested KVM is slow).
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>

#include "guest_kernel_vm.h"
#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

using std::chrono::seconds;
using testing::GuestKernelVm;
using testing::GuestKernelVmOptions;
using testing::kMiB;
using testing::TempPath;

// 32 MiB: twice what a kSmallRing ring holds, so the ring fills while the workload runs.
constexpr uint64_t kWorkloadPages = 8192;
constexpr uint32_t kSmallRing = 4096;
// What the guest kernel itself writes while it runs the workload, besides the workload's
// pages: the workload's page tables (one page per 512 pages, plus the upper levels), its
// process and stacks, slab objects, the buddy's free-list links, the control channel's
// buffers and the timer ticks. Measured under nested KVM: see vmm/reclaim/dirty/README.md.
constexpr uint64_t kKernelWriteBound = kWorkloadPages / 64 + 256;
// A guest that idles writes only its timer-tick and scheduler state.
constexpr uint64_t kIdleBound = kWorkloadPages / 16;
constexpr seconds kBootTimeout{90};
constexpr seconds kWorkloadTimeout{120};
constexpr seconds kRequestTimeout{30};

// Why `tracking` cannot run here ("" when it can): no KVM, no guest kernel, or a KVM that
// does not offer its capability.
std::string unavailable_reason(DirtyTracking tracking) {
  std::string reason = testing::kvm_unavailable_reason();
  if (reason.empty()) {
    reason = testing::guest_kernel_unavailable_reason();
  }
  if (!reason.empty()) {
    return reason;
  }
  auto kvm = Kvm::open();
  auto vm = kvm ? KvmVm::create(*kvm) : Result<KvmVm>(kvm.error());
  if (!vm) {
    return vm.error().message;
  }
  if (tracking == DirtyTracking::kLog) {
    return vm->check_extension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0
               ? ""
               : "KVM does not offer KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2";
  }
  return vm->check_extension(KVM_CAP_DIRTY_LOG_RING_ACQ_REL) > 0 ||
                 vm->check_extension(KVM_CAP_DIRTY_LOG_RING) > 0
             ? ""
             : "KVM offers neither KVM_CAP_DIRTY_LOG_RING_ACQ_REL nor KVM_CAP_DIRTY_LOG_RING";
}

// A booted guest kernel with dirty tracking of one kind.
struct DirtyTrackingVm : ::testing::Test {
  void boot(DirtyTracking tracking) {
    GuestKernelVmOptions options;
    options.memory = 256 * kMiB;
    options.console_log = console.path;
    options.dirty_tracking = tracking;
    options.dirty_ring_entries = kSmallRing;
    // One page per fault: a fault-around window would fill (allocate) pages the guest never
    // writes, which no dirty log reports.
    options.fault_around_max = 0;
    auto started = GuestKernelVm::start(options);
    ASSERT_TRUE(started.ok()) << started.error().message;
    vm = std::move(*started);
    auto pinged = vm->ping(kBootTimeout);
    ASSERT_TRUE(pinged.ok()) << pinged.error().message << "\nconsole:\n" << console_text();
    source = vm->machine().dirty_source();
    ASSERT_NE(source, nullptr);
    EXPECT_EQ(source->kind(), tracking);
  }
  // The IPA page numbers one harvest reports; each page must come once.
  std::set<uint64_t> harvest() {
    std::set<uint64_t> pages;
    uint64_t repeats = 0;
    auto harvested = source->harvest([&](IpaRange run) {
      for (uint64_t p = run.start.page_number(); p < run.end().page_number(); ++p) {
        repeats += pages.insert(p).second ? 0 : 1;
      }
    });
    EXPECT_TRUE(harvested.ok()) << harvested.error().message;
    EXPECT_EQ(repeats, 0u) << "pages reported more than once in one harvest";
    return pages;
  }
  // The IPA page numbers of the memfd's allocated pages.
  std::set<uint64_t> allocated_pages() {
    std::set<uint64_t> pages;
    GuestPhysical& physical = vm->machine().physical();
    auto extents = physical.memory().allocated_extents();
    EXPECT_TRUE(extents.ok()) << extents.error().message;
    for (const HostRange& extent : extents ? *extents : std::vector<HostRange>{}) {
      for (const RamRegion& region : physical.ram()) {
        const uint64_t from = std::max(extent.start.value(), region.offset.value());
        const uint64_t to =
            std::min(extent.end().value(), region.offset.value() + region.range.size);
        for (uint64_t offset = from; offset < to; offset += kPageSize) {
          pages.insert((region.range.start + (offset - region.offset.value())).page_number());
        }
      }
    }
    return pages;
  }
  void shut_down() {
    auto status = vm->shut_down(0, kRequestTimeout);
    ASSERT_TRUE(status.ok()) << status.error().message;
    EXPECT_EQ(*status, 0) << console_text();
  }
  std::string console_text() { return testing::slurp(console.path); }

  // The whole scenario for `tracking` (see the file comment).
  void workload_writes_are_reported(DirtyTracking tracking);

  TempPath console{"dirty-tracking-console"};
  std::unique_ptr<GuestKernelVm> vm;
  DirtySource* source = nullptr;
};

void DirtyTrackingVm::workload_writes_are_reported(DirtyTracking tracking) {
  ASSERT_NO_FATAL_FAILURE(boot(tracking));
  const std::set<uint64_t> boot_writes = harvest();
  EXPECT_GT(boot_writes.size(), 0u) << "boot wrote guest memory";
  harvest();  // what the guest wrote while the first harvest ran
  const std::set<uint64_t> before = allocated_pages();
  auto touched = vm->touch(kWorkloadPages * kPageSize, 9, true, kWorkloadTimeout);
  ASSERT_TRUE(touched.ok()) << touched.error().message << "\nconsole:\n" << console_text();
  ASSERT_EQ(touched->pages, kWorkloadPages);
  const std::set<uint64_t> after = allocated_pages();
  const std::set<uint64_t> written = harvest();
  EXPECT_GE(written.size(), kWorkloadPages);
  EXPECT_LE(written.size(), kWorkloadPages + kKernelWriteBound);
  uint64_t new_pages = 0;
  std::vector<uint64_t> missing;
  for (uint64_t page : after) {
    if (before.count(page) == 0) {
      ++new_pages;
      if (written.count(page) == 0) {
        missing.push_back(page);
      }
    }
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << new_pages
                               << " newly allocated pages not reported, the first at IPA page "
                               << (missing.empty() ? 0 : missing[0]);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::set<uint64_t> idle = harvest();
  EXPECT_LT(idle.size(), kIdleBound);
  const DirtySourceStats stats = source->stats();
  EXPECT_EQ(stats.harvests, 4u);
  EXPECT_GE(stats.dirty_pages, boot_writes.size() + written.size() + idle.size());
  if (tracking == DirtyTracking::kRing) {
    EXPECT_GT(stats.ring_full_exits, 0u)
        << "a ring of " << kSmallRing << " filled by " << kWorkloadPages << " pages";
  }
  RecordProperty("boot_pages", static_cast<int>(boot_writes.size()));
  RecordProperty("epoch_pages", static_cast<int>(written.size()));
  RecordProperty("new_memfd_pages", static_cast<int>(new_pages));
  RecordProperty("idle_pages", static_cast<int>(idle.size()));
  std::printf(
      "dirty tracking %s: boot %zu pages, epoch %zu pages (workload %llu, %llu newly "
      "allocated), idle %zu pages, %llu ring-full exits\n",
      std::string(dirty_tracking_name(tracking)).c_str(), boot_writes.size(), written.size(),
      static_cast<unsigned long long>(kWorkloadPages), static_cast<unsigned long long>(new_pages),
      idle.size(), static_cast<unsigned long long>(stats.ring_full_exits));
  auto verified = vm->verify(touched->workload, kWorkloadTimeout);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(verified->mismatched_pages, 0u);
  ASSERT_TRUE(vm->exit_workload(touched->workload, kRequestTimeout).ok());
  shut_down();
}

// The bitmap with manual protect: the epoch's harvest reports the workload's pages, every
// newly allocated page among them, and little more; the idle harvest far fewer.
TEST_F(DirtyTrackingVm, LogReportsWorkloadWrites) {
  const std::string why = unavailable_reason(DirtyTracking::kLog);
  if (!why.empty()) {
    GTEST_SKIP() << why;
  }
  workload_writes_are_reported(DirtyTracking::kLog);
}

// The same with the per-vCPU ring, which also fills (ring-full exits) during the workload.
TEST_F(DirtyTrackingVm, RingReportsWorkloadWrites) {
  const std::string why = unavailable_reason(DirtyTracking::kRing);
  if (!why.empty()) {
    GTEST_SKIP() << why;
  }
  workload_writes_are_reported(DirtyTracking::kRing);
}

// Without dirty_tracking the Machine has no source (nothing enabled, nothing to harvest).
TEST(DirtyTrackingOff, NoSourceWhenNotConfigured) {
  const std::string why = unavailable_reason(DirtyTracking::kLog);
  if (!why.empty()) {
    GTEST_SKIP() << why;
  }
  auto started = GuestKernelVm::start(GuestKernelVmOptions{});
  ASSERT_TRUE(started.ok()) << started.error().message;
  EXPECT_EQ((*started)->machine().dirty_source(), nullptr);
  auto pinged = (*started)->ping(kBootTimeout);
  ASSERT_TRUE(pinged.ok()) << pinged.error().message;
  auto status = (*started)->shut_down(0, kRequestTimeout);
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(*status, 0);
}

}  // namespace
}  // namespace hvmm::vmm
