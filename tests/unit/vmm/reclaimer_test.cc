// Tests of the reclaim window and the way back, on a real memfd with a real userfaultfd (no
// KVM; host threads touching the primary mapping stand in for vCPUs): a refault restores
// exact contents, a failing load stops the VM and nothing else, VMM accesses restore
// reclaimed pages, writes during an open window abort their page, and pages the store does
// not keep end resident and writable.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "hvmm/base/pattern_mix.h"
#include "hvmm/vmm/fault/refault_fill.h"
#include "hvmm/vmm/machine/exit_status.h"
#include "hvmm/vmm/memory/reclaim_window.h"
#include "reclaim_window_test_support.h"

namespace hvmm::vmm {
namespace {

using namespace std::chrono_literals;
using stage2::Backing;
using testing::PageBytes;

constexpr uint64_t kRam = 4 << 20;
constexpr uint64_t kSeed = 0x5eed9;
constexpr Ipa kBase(1 << 20);  // the pages the tests reclaim start here

// The IPA of test page `n`.
constexpr Ipa page(uint64_t n) {
  return kBase + n * kPageSize;
}
// `count` test pages from page `first`.
constexpr IpaRange pages(uint64_t first, uint64_t count) {
  return IpaRange{page(first), count * kPageSize};
}

// Page `n` of the seeded page mix.
PageBytes mix_page(uint64_t n) {
  PageBytes bytes{};
  for (uint64_t i = 0; i < pattern::kPageWords; ++i) {
    const uint64_t word = pattern::mix_word(kSeed, n, i);
    std::memcpy(bytes.data() + i * 8, &word, 8);
  }
  return bytes;
}

// Copy `size` bytes at `address` from another thread (a stand-in vCPU: a fault on the
// primary mapping blocks it, never the test), within `timeout`; nothing when it timed out.
std::optional<std::vector<uint8_t>> read_from_thread(const uint8_t* address, size_t size,
                                                     std::chrono::milliseconds timeout = 5s) {
  auto copy = std::make_shared<std::vector<uint8_t>>(size);
  auto done = std::make_shared<std::promise<void>>();
  auto ready = done->get_future();
  std::thread([address, size, copy, done] {
    std::memcpy(copy->data(), address, size);
    done->set_value();
  }).detach();
  if (ready.wait_for(timeout) != std::future_status::ready)
    return std::nullopt;
  return *copy;
}

// Write `byte` at `address` from another thread; true when it completed within `timeout`.
bool write_from_thread(uint8_t* address, uint8_t byte, std::chrono::milliseconds timeout = 5s) {
  auto done = std::make_shared<std::promise<void>>();
  auto ready = done->get_future();
  std::thread([address, byte, done] {
    *reinterpret_cast<volatile uint8_t*>(address) = byte;
    done->set_value();
  }).detach();
  return ready.wait_for(timeout) == std::future_status::ready;
}

class ReclaimerTest : public testing::ReclaimFixture {
 protected:
  // Start, then write mix pages [0, count) through the VMM path (the pages are allocated).
  void start_with_mix(uint64_t count) {
    start(kRam);
    for (uint64_t n = 0; n < count; ++n) {
      const PageBytes bytes = mix_page(n);
      ASSERT_TRUE(physical->write(page(n), bytes).ok());
    }
  }
  // Reclaimed pages the fault handler restored so far.
  uint64_t restored_faults() const {
    return handler->counts().faults[static_cast<size_t>(FaultKind::kReclaimed)]
                                   [static_cast<size_t>(FaultResolution::kRestored)];
  }
};

// Pages written and then reclaimed become reclaimed in the map, leave the memfd and sit in
// the store; holes and non-RAM-resident pages are skipped.
TEST_F(ReclaimerTest, ReclaimPunchesAndStores) {
  start_with_mix(16);
  const uint64_t before = *physical->allocated_bytes();
  ReclaimBatch batch = reclaim({pages(0, 20)});
  EXPECT_EQ(batch.reclaimed, 16u);
  EXPECT_EQ(batch.skipped.size(), 4u) << "the four holes";
  EXPECT_TRUE(batch.aborted.empty());
  for (uint64_t n = 0; n < 16; ++n) {
    EXPECT_EQ(backing_at(page(n)), Backing::kReclaimed) << n;
    EXPECT_TRUE(store.contains(page(n))) << n;
  }
  EXPECT_EQ(*physical->allocated_bytes(), before - 16 * kPageSize);
  EXPECT_EQ(physical->page_counts()[Backing::kReclaimed], 16u);
  EXPECT_EQ(physical->page_counts(), physical->count_pages_by_walk());
}

// (b) A guest read of reclaimed pages gets back exactly what was written (zero, text-like
// and random pages of the mix); the pages are resident again, their entries erased, and
// the refault reported with its latency.
TEST_F(ReclaimerTest, RefaultRestoresExactContents) {
  start_with_mix(24);
  ASSERT_EQ(reclaim({pages(0, 24)}).reclaimed, 24u);
  for (uint64_t n = 0; n < 24; ++n) {
    auto seen = read_from_thread(guest(page(n)), kPageSize);
    ASSERT_TRUE(seen) << "refault of page " << n << " never completed; " << stopped();
    const PageBytes want = mix_page(n);
    EXPECT_EQ(std::memcmp(seen->data(), want.data(), kPageSize), 0) << "page " << n;
  }
  for (uint64_t n = 0; n < 24; ++n) {
    EXPECT_EQ(backing_at(page(n)), Backing::kResident) << n;
    EXPECT_FALSE(store.contains(page(n))) << n;
  }
  EXPECT_EQ(events.refaulted_pages.load(), 24u);
  EXPECT_GT(events.last_latency_ns.load(), 0u);
  EXPECT_GT(restored_faults(), 0u);
  EXPECT_LE(restored_faults(), 24u);
  EXPECT_EQ(physical->page_counts(), physical->count_pages_by_walk());
  EXPECT_EQ(stopped(), "");
}

// Fault-around of reclaimed pages grows with a sequential stream like any other, but never
// past the reclaimed cluster (8 pages, aligned).
TEST_F(ReclaimerTest, RefaultClusterIsSmall) {
  start_with_mix(64);
  ASSERT_EQ(reclaim({pages(0, 64)}).reclaimed, 64u);
  std::thread reader([this] {
    for (uint64_t n = 0; n < 64; ++n)
      (void)*reinterpret_cast<volatile uint8_t*>(guest(page(n)));
  });
  reader.join();
  // The handler reports a refault after the copy that woke the reader: wait for the last one.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (events.refaulted_pages.load() < 64u && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(events.refaulted_pages.load(), 64u);
  EXPECT_EQ(events.max_refault_pages.load(), 8u) << "the window grew to the cluster, no further";
  EXPECT_LT(events.refaults.load(), 64u / 2);
}

// (c) A load that fails (a corrupted entry) fails the fault: the stop callback names the
// IPA with internal-error, the page stays reclaimed, and the handler goes on answering
// other faults; closing the userfaultfd releases the stuck thread.
TEST_F(ReclaimerTest, LoadErrorStopsTheVmNamingTheIpa) {
  store.failing_loads.insert(page(3).value());
  start_with_mix(24);
  ASSERT_EQ(reclaim({pages(0, 24)}).reclaimed, 24u);
  std::thread stuck([this] { (void)*reinterpret_cast<volatile uint8_t*>(guest(page(3))); });
  for (int i = 0; i < 1000 && stopped().empty(); ++i)
    std::this_thread::sleep_for(2ms);
  const std::string reason = stopped();
  EXPECT_EQ(stop_status, kExitInternalError);
  EXPECT_NE(reason.find(fmt::format("{:#x}", page(3).value())), std::string::npos) << reason;
  EXPECT_EQ(backing_at(page(3)), Backing::kReclaimed);
  EXPECT_TRUE(store.contains(page(3)));
  auto later = read_from_thread(guest(page(17)), kPageSize);
  ASSERT_TRUE(later) << "a later fault was not answered";
  EXPECT_EQ(std::memcmp(later->data(), mix_page(17).data(), kPageSize), 0);
  EXPECT_EQ(handler->counts().faults[static_cast<size_t>(FaultKind::kReclaimed)]
                                    [static_cast<size_t>(FaultResolution::kFailed)],
            1u);
  reclaimer.reset();
  handler.reset();  // closes the userfaultfd: the kernel resolves the stuck fault itself
  stuck.join();
}

// (d) VMM reads and partial writes of reclaimed pages restore them first: the read sees the
// contents, the write lands on them, the pages are resident, entries erased, and both
// accesses are reported with what they restored.
TEST_F(ReclaimerTest, VmmAccessRestoresReclaimedPages) {
  start_with_mix(8);
  ASSERT_EQ(reclaim({pages(0, 8)}).reclaimed, 8u);
  PageBytes read{};
  ASSERT_TRUE(physical->read(page(4), read).ok());
  EXPECT_EQ(read, mix_page(4));
  const std::vector<uint8_t> patch(16, 0xab);
  ASSERT_TRUE(physical->write(page(5) + 100, patch).ok());
  PageBytes want = mix_page(5);
  std::memset(want.data() + 100, 0xab, 16);
  PageBytes back{};
  ASSERT_TRUE(physical->read(page(5), back).ok());
  EXPECT_EQ(back, want);
  EXPECT_EQ(backing_at(page(4)), Backing::kResident);
  EXPECT_EQ(backing_at(page(5)), Backing::kResident);
  EXPECT_EQ(backing_at(page(6)), Backing::kReclaimed) << "only the accessed pages come back";
  EXPECT_FALSE(store.contains(page(4)));
  EXPECT_FALSE(store.contains(page(5)));
  EXPECT_EQ(events.vmm_restored.load(), 2u);
  EXPECT_EQ(events.vmm_writes.load(), 9u) << "eight mix pages and the patch";
  EXPECT_EQ(events.vmm_reads.load(), 1u) << "only the read that restored is reported";
  auto guest_view = read_from_thread(guest(page(5)), kPageSize);
  ASSERT_TRUE(guest_view);
  EXPECT_EQ(std::memcmp(guest_view->data(), want.data(), kPageSize), 0);
  EXPECT_EQ(events.refaults.load(), 0u) << "the guest found the page the VMM restored";
}

// (d) A VMM access of a page whose entry fails its check returns the error (naming the
// IPA) to the caller; the page stays reclaimed and the VM is not stopped.
TEST_F(ReclaimerTest, VmmAccessLoadErrorIsReturned) {
  store.failing_loads.insert(page(2).value());
  start_with_mix(4);
  ASSERT_EQ(reclaim({pages(0, 4)}).reclaimed, 4u);
  PageBytes read{};
  Result<void> failed = physical->read(page(2), read);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ErrorCode::kDataLoss);
  EXPECT_NE(failed.error().message.find(fmt::format("{:#x}", page(2).value())), std::string::npos)
      << failed.error().message;
  EXPECT_EQ(backing_at(page(2)), Backing::kReclaimed);
  EXPECT_TRUE(physical->read(page(1), read).ok());
  EXPECT_EQ(stopped(), "");
}

// (d) A VMM write to a page of a window held open (store() waits on a latch) aborts that
// page: it stays resident with the write, its entry is erased, the others are reclaimed.
TEST_F(ReclaimerTest, VmmWriteDuringOpenWindowAbortsThePage) {
  start_with_mix(4);
  store.arm_latch();
  auto pass = std::async(std::launch::async, [&] { return reclaimer->reclaim({{pages(0, 4)}}); });
  ASSERT_TRUE(store.wait_latched(5s));
  const std::vector<uint8_t> patch(8, 0xcd);
  ASSERT_TRUE(physical->write(page(2), patch).ok()) << "a VMM write never waits for a window";
  store.release_latch();
  auto batch = pass.get();
  ASSERT_TRUE(batch.ok()) << batch.error().message;
  EXPECT_EQ(batch->reclaimed, 3u);
  ASSERT_EQ(batch->aborted.size(), 1u);
  EXPECT_EQ(batch->aborted[0], page(2));
  EXPECT_EQ(backing_at(page(2)), Backing::kResident);
  EXPECT_FALSE(store.contains(page(2)));
  PageBytes want = mix_page(2);
  std::memset(want.data(), 0xcd, 8);
  PageBytes back{};
  ASSERT_TRUE(physical->read(page(2), back).ok());
  EXPECT_EQ(back, want);
}

// A guest write to a page of a window held open faults on the write protection, is let
// through at once (the window only marks it), and aborts the page.
TEST_F(ReclaimerTest, GuestWriteDuringOpenWindowAbortsThePage) {
  start_with_mix(4);
  store.arm_latch();
  auto pass = std::async(std::launch::async, [&] { return reclaimer->reclaim({{pages(0, 4)}}); });
  ASSERT_TRUE(store.wait_latched(5s));
  EXPECT_TRUE(write_from_thread(guest(page(1)) + 7, 0xee)) << "the WP fault was not answered";
  store.release_latch();
  auto batch = pass.get();
  ASSERT_TRUE(batch.ok()) << batch.error().message;
  EXPECT_EQ(batch->reclaimed, 3u);
  ASSERT_EQ(batch->aborted.size(), 1u);
  EXPECT_EQ(batch->aborted[0], page(1));
  EXPECT_EQ(backing_at(page(1)), Backing::kResident);
  EXPECT_FALSE(store.contains(page(1)));
  EXPECT_EQ(handler->counts().of_kind(FaultKind::kWriteProtect), 1u);
  PageBytes back{};
  ASSERT_TRUE(physical->read(page(1), back).ok());
  PageBytes want = mix_page(1);
  want[7] = 0xee;
  EXPECT_EQ(back, want);
}

// (e) Pages the store does not keep (incompressible, full) stay resident, are reported,
// and end writable: a guest write completes without a write-protect fault.
TEST_F(ReclaimerTest, KeptPagesEndResidentAndWritable) {
  store.refuse = [](Ipa ipa) -> std::optional<StoreOutcome> {
    if (ipa == page(1))
      return StoreOutcome::kIncompressible;
    if (ipa == page(2))
      return StoreOutcome::kFull;
    return std::nullopt;
  };
  start_with_mix(4);
  ReclaimBatch batch = reclaim({pages(0, 4)});
  EXPECT_EQ(batch.reclaimed, 2u);
  EXPECT_EQ(batch.incompressible, std::vector<Ipa>{page(1)});
  EXPECT_EQ(batch.full, std::vector<Ipa>{page(2)});
  for (uint64_t n : {1u, 2u}) {
    EXPECT_EQ(backing_at(page(n)), Backing::kResident) << n;
    EXPECT_FALSE(store.contains(page(n))) << n;
    EXPECT_TRUE(write_from_thread(guest(page(n)), 0x11))
        << "page " << n << " stuck write-protected";
  }
  EXPECT_EQ(handler->counts().of_kind(FaultKind::kWriteProtect), 0u);
  EXPECT_EQ(physical->memory().alias_base()[page(1).value()], 0x11);
}

// A store error before the commit abandons the window: nothing is reclaimed, the error is
// returned, every page is resident and writable, and no entry is left behind.
TEST_F(ReclaimerTest, StoreErrorAbandonsTheWindow) {
  store.failing_stores.insert(page(2).value());
  start_with_mix(4);
  auto failed = reclaimer->reclaim({{pages(0, 4)}});
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message.find(fmt::format("{:#x}", page(2).value())), std::string::npos)
      << failed.error().message;
  EXPECT_EQ(store.entries(), 0u);
  for (uint64_t n = 0; n < 4; ++n) {
    EXPECT_EQ(backing_at(page(n)), Backing::kResident) << n;
    EXPECT_TRUE(write_from_thread(guest(page(n)), 0x22)) << "page " << n << " stuck";
  }
  EXPECT_EQ(handler->counts().of_kind(FaultKind::kWriteProtect), 0u);
}

// Every page of a large request goes through windows of at most max_window bytes.
TEST_F(ReclaimerTest, LargeRequestsRunInBoundedWindows) {
  start_with_mix(0);
  std::vector<uint8_t> ones(kRam / 2, 1);
  ASSERT_TRUE(physical->write(Ipa(0), ones).ok());
  ReclaimBatch batch = reclaim({IpaRange{Ipa(0), kRam / 2}});
  EXPECT_EQ(batch.windows, (kRam / 2) / Reclaimer::kDefaultMaxWindow);
  EXPECT_EQ(batch.reclaimed, kRam / 2 / kPageSize);
}

// The reclaimed cluster is aligned, holds the faulting page and stays inside the run.
TEST(ReclaimedCluster, AlignedInsideTheRun) {
  const IpaRange run{Ipa(0x3000), 0x20000};
  EXPECT_EQ(reclaimed_cluster(run, Ipa(0xa123), 8 * kPageSize), (IpaRange{Ipa(0x8000), 0x8000}));
  EXPECT_EQ(reclaimed_cluster(run, Ipa(0x4000), 8 * kPageSize), (IpaRange{Ipa(0x3000), 0x5000}));
  EXPECT_EQ(reclaimed_cluster(run, Ipa(0x4000), 0), (IpaRange{Ipa(0x4000), kPageSize}));
  EXPECT_EQ(reclaimed_cluster_size(12 * kPageSize), 8 * kPageSize);
}

// The window's marks: written by a mark or a write access, busy when an access is in flight
// at the close, changed by a state change; nothing is marked once closed.
TEST(ReclaimWindowMarks, WrittenBusyAndChanged) {
  ReclaimWindow window;
  const uint64_t early = window.begin_access(IpaRange{Ipa(0x1000), 0x1000}, /*write=*/true);
  ASSERT_TRUE(window.open({Ipa(0x5000), Ipa(0x1000), Ipa(0x2000), Ipa(0x3000), Ipa(0x4000)}).ok());
  EXPECT_FALSE(window.open({Ipa(0x9000)}).ok()) << "one window at a time";
  window.end_access(early);
  window.mark_written(IpaRange{Ipa(0x2800), 8});
  window.mark_changed(IpaRange{Ipa(0x3000), 0x1000});
  const uint64_t reading = window.begin_access(IpaRange{Ipa(0x4000), 0x1000}, /*write=*/false);
  ReclaimWindowMarks marks = window.close().marks;
  window.end_access(reading);
  EXPECT_EQ(marks.written, (std::vector<Ipa>{Ipa(0x1000), Ipa(0x2000), Ipa(0x4000)}));
  EXPECT_EQ(marks.changed, std::vector<Ipa>{Ipa(0x3000)});
  window.mark_written(IpaRange{Ipa(0x5000), 0x1000});
  EXPECT_FALSE(window.is_open());
  EXPECT_TRUE(window.close().marks.written.empty());
}

// A closed window's hold keeps markings (a WP fault's, a VMM access's) waiting until the
// commit releases it: nothing can be let through between the check and the punch.
TEST(ReclaimWindowMarks, CloseHoldsMarkingsOff) {
  ReclaimWindow window;
  ASSERT_TRUE(window.open({Ipa(0x1000)}).ok());
  ReclaimWindowClose closed = window.close();
  auto marking = std::async(std::launch::async, [&] {
    window.mark_written(IpaRange{Ipa(0x1000), kPageSize});
    return window.begin_access(IpaRange{Ipa(0x1000), kPageSize}, /*write=*/true);
  });
  EXPECT_EQ(marking.wait_for(100ms), std::future_status::timeout);
  closed.hold.unlock();
  ASSERT_EQ(marking.wait_for(5s), std::future_status::ready);
  window.end_access(marking.get());
  EXPECT_FALSE(window.is_open());
}

}  // namespace
}  // namespace hvmm::vmm
