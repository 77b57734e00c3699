// Tests of GuestPhysical's controls on a real memfd with a real userfaultfd (no KVM; host
// threads touching the primary mapping stand in for vCPUs, as in reclaimer_test.cc): range
// checks name the range; dropping KVM's translations (the zap of a stage-2 shootdown) keeps
// every byte, raises no MISSING fault, is seen by the handler as one REMOVE event, and keeps
// the write protection of an open reclaim window (a write during it still aborts the page);
// the stage-2 TLB drops what it cached; aging counts young pages before it clears them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <thread>

#include "reclaim_window_test_support.h"

namespace hvmm::vmm {
namespace {

using namespace std::chrono_literals;
using stage2::Backing;
using testing::PageBytes;

constexpr uint64_t kRam = 4 << 20;
constexpr Ipa kBase(1 << 20);  // the tests' pages start here (IPA = host offset below 3 GiB)
constexpr uint64_t kPages = 16;

constexpr Ipa page(uint64_t n) {
  return kBase + n * kPageSize;
}
constexpr IpaRange pages(uint64_t first, uint64_t count) {
  return IpaRange{page(first), count * kPageSize};
}

// Page `n`'s contents: every byte tells the page and its position apart.
PageBytes pattern_page(uint64_t n) {
  PageBytes bytes{};
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<uint8_t>(n * 31 + i * 7 + 1);
  return bytes;
}

// Run `work` on another thread (a stand-in vCPU); false when it did not finish in time.
bool on_thread(std::function<void()> work, std::chrono::milliseconds timeout = 5s) {
  auto done = std::make_shared<std::promise<void>>();
  auto ready = done->get_future();
  std::thread([work = std::move(work), done] {
    work();
    done->set_value();
  }).detach();
  return ready.wait_for(timeout) == std::future_status::ready;
}

class GuestPhysicalControlsTest : public testing::ReclaimFixture {
 protected:
  // Build, write the pattern to pages [0, kPages) through the VMM, then read each page
  // through the primary mapping so it is mapped there (as KVM's accesses map it).
  void start_with_pattern() {
    start(kRam);
    for (uint64_t n = 0; n < kPages; ++n)
      ASSERT_TRUE(physical->write(page(n), pattern_page(n)).ok());
    volatile uint64_t sum = 0;
    ASSERT_TRUE(on_thread([&] {
      for (uint64_t n = 0; n < kPages; ++n)
        sum = sum + *reinterpret_cast<volatile uint8_t*>(guest(page(n)));
    }));
  }
  // How many of pages [0, kPages) the primary mapping has a present entry for
  // (/proc/self/pagemap bit 63; mincore would say whether the page cache has them, which the
  // zap does not change).
  uint64_t mapped_in_primary() {
    UniqueFd pagemap(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
    EXPECT_TRUE(pagemap.valid()) << "cannot open /proc/self/pagemap";
    uint64_t mapped = 0;
    for (uint64_t n = 0; n < kPages && pagemap.valid(); ++n) {
      uint64_t entry = 0;
      const auto at = reinterpret_cast<uintptr_t>(guest(page(n))) / kPageSize * sizeof(entry);
      EXPECT_EQ(::pread(pagemap.get(), &entry, sizeof(entry), static_cast<off_t>(at)), 8);
      mapped += (entry >> 63) & 1;
    }
    return mapped;
  }
  // Page `n` read through the primary mapping from another thread.
  PageBytes guest_read(uint64_t n) {
    PageBytes bytes{};
    EXPECT_TRUE(on_thread([&] { std::memcpy(bytes.data(), guest(page(n)), bytes.size()); }))
        << "a read of page " << n << " did not complete";
    return bytes;
  }
};

// Misaligned, empty, overflowing and out-of-space ranges are refused with "range: ...".
TEST_F(GuestPhysicalControlsTest, RangeChecksNameTheRange) {
  start(kRam);
  struct Case {
    IpaRange range;
    ErrorCode code;
    const char* says;
  };
  const Case cases[] = {
      {IpaRange{Ipa(0x1000), 0x800}, ErrorCode::kInvalidArgument,
       "range: [0x1000, 0x1800) is not page aligned"},
      {IpaRange{Ipa(0x1800), 0x1000}, ErrorCode::kInvalidArgument, "not page aligned"},
      {IpaRange{Ipa(0x2000), 0}, ErrorCode::kInvalidArgument, "range: empty at 0x2000"},
      {IpaRange{Ipa(~uint64_t{0} - 0xfff), 0x2000}, ErrorCode::kInvalidArgument, "overflows"},
      {IpaRange{Ipa(uint64_t{1} << 40), 0x1000}, ErrorCode::kOutOfRange,
       "outside the 40-bit IPA space"},
  };
  for (const Case& c : cases) {
    auto checked = physical->check_control_range(c.range);
    ASSERT_FALSE(checked.ok()) << c.says;
    EXPECT_EQ(checked.error().code, c.code) << checked.error().message;
    EXPECT_EQ(checked.error().message.rfind("range: ", 0), 0u) << checked.error().message;
    EXPECT_NE(checked.error().message.find(c.says), std::string::npos) << checked.error().message;
  }
  EXPECT_TRUE(physical->check_control_range(IpaRange{Ipa(0), uint64_t{1} << 40}).ok());
}

// The zap unmaps the pages from the primary mapping only: the memfd keeps them (same
// allocated bytes), the next guest read gets every byte back without a MISSING fault, and
// the handler saw one REMOVE event for the range.
TEST_F(GuestPhysicalControlsTest, DropKeepsContentsWithoutMissingFaults) {
  start_with_pattern();
  ASSERT_EQ(mapped_in_primary(), kPages);
  const uint64_t allocated = *physical->allocated_bytes();
  const FaultCounts before = handler->counts();
  auto dropped = physical->drop_kvm_translations(pages(0, kPages));
  ASSERT_TRUE(dropped.ok()) << dropped.error().message;
  EXPECT_EQ(*dropped, kPages);
  EXPECT_EQ(mapped_in_primary(), 0u) << "the primary mapping still maps pages";
  EXPECT_EQ(*physical->allocated_bytes(), allocated) << "the zap released memory";
  for (uint64_t n = 0; n < kPages; ++n)
    EXPECT_EQ(guest_read(n), pattern_page(n)) << "page " << n;
  const FaultCounts after = handler->counts();
  EXPECT_EQ(after.of_kind(FaultKind::kMissing), before.of_kind(FaultKind::kMissing));
  EXPECT_EQ(after.removes, before.removes + 1);
  EXPECT_EQ(after.bytes_removed - before.bytes_removed, kPages * kPageSize);
  EXPECT_EQ(mapped_in_primary(), kPages);
}

// Only the RAM part of a range is zapped: a range across the end of RAM counts RAM pages.
TEST_F(GuestPhysicalControlsTest, DropCountsOnlyRam) {
  start(kRam);
  auto dropped =
      physical->drop_kvm_translations(IpaRange{Ipa(kRam - 2 * kPageSize), 16 * kPageSize});
  ASSERT_TRUE(dropped.ok()) << dropped.error().message;
  EXPECT_EQ(*dropped, 2u);
  auto outside = physical->drop_kvm_translations(IpaRange{Ipa(uint64_t{3} << 30), kPageSize});
  ASSERT_TRUE(outside.ok());
  EXPECT_EQ(*outside, 0u);
}

// A zap while a reclaim window is open keeps the window's write protection (the kernel
// leaves a uffd-wp marker in the zapped entry): a guest write afterwards still faults, the
// window marks the page, and the page is kept with the write, not reclaimed without it. The
// Machine does not rely on this (it holds epochs off), but no write would be lost if it did.
TEST_F(GuestPhysicalControlsTest, DropDuringOpenWindowKeepsWriteProtection) {
  start_with_pattern();
  store.arm_latch();
  auto pass = std::async(std::launch::async, [&] { return reclaimer->reclaim({{pages(0, 4)}}); });
  ASSERT_TRUE(store.wait_latched(5s));
  ASSERT_TRUE(physical->drop_kvm_translations(pages(0, 4)).ok());
  EXPECT_TRUE(on_thread([&] { *reinterpret_cast<volatile uint8_t*>(guest(page(1)) + 9) = 0xee; }))
      << "the write-protect fault was not answered";
  store.release_latch();
  auto batch = pass.get();
  ASSERT_TRUE(batch.ok()) << batch.error().message;
  ASSERT_EQ(batch->aborted.size(), 1u) << "the write during the window was not seen";
  EXPECT_EQ(batch->aborted[0], page(1));
  EXPECT_EQ(backing_at(page(1)), Backing::kResident);
  EXPECT_GE(handler->counts().of_kind(FaultKind::kWriteProtect), 1u);
  PageBytes want = pattern_page(1);
  want[9] = 0xee;
  EXPECT_EQ(guest_read(1), want);
}

// VMM reads fill the stage-2 TLB; invalidating the range drops exactly those entries, a
// flush drops the rest.
TEST_F(GuestPhysicalControlsTest, TlbInvalidationCountsEntries) {
  start_with_pattern();
  PageBytes bytes{};
  for (uint64_t n = 0; n < 8; ++n)
    ASSERT_TRUE(physical->read(page(n), bytes).ok());
  EXPECT_EQ(physical->invalidate_tlb(pages(0, 4)), 4u);
  EXPECT_EQ(physical->invalidate_tlb(pages(0, 4)), 0u);
  EXPECT_GE(physical->flush_tlb(), 4u);
  EXPECT_EQ(physical->flush_tlb(), 0u);
  EXPECT_EQ(physical->tlb().stats().full_invalidations, 2u);
}

// RAM is mapped young: test_young reports every page and leaves them, clear_young reports
// them and clears them, and then nothing is young until a VMM access marks its leaf (a
// 2 MiB block: 512 pages) young again.
TEST_F(GuestPhysicalControlsTest, AgeCountsYoungPagesBeforeClearing) {
  start(kRam);
  const IpaRange ram{Ipa(0), kRam};
  const uint64_t ram_pages = kRam / kPageSize;
  GuestPhysical::Aging tested = physical->age(ram, /*clear=*/false);
  EXPECT_TRUE(tested.young);
  EXPECT_EQ(tested.young_pages, ram_pages);
  GuestPhysical::Aging cleared = physical->age(ram, /*clear=*/true);
  EXPECT_TRUE(cleared.young);
  EXPECT_EQ(cleared.young_pages, ram_pages);
  GuestPhysical::Aging after = physical->age(ram, /*clear=*/false);
  EXPECT_FALSE(after.young);
  EXPECT_EQ(after.young_pages, 0u);
  PageBytes bytes{};
  ASSERT_TRUE(physical->read(page(0), bytes).ok());
  GuestPhysical::Aging touched = physical->age(ram, /*clear=*/false);
  EXPECT_TRUE(touched.young);
  EXPECT_EQ(touched.young_pages, kLargePageSize / kPageSize);
  EXPECT_EQ(physical->age(pages(0, 1), /*clear=*/true).young_pages, 1u) << "clipped to the range";
}

}  // namespace
}  // namespace hvmm::vmm
