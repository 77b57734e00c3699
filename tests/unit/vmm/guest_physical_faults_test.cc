// Tests of GuestPhysical as the fault handler's FaultResolver, on a real memfd: the runs
// classify() reports over a map of mixed page states, what finish() records, and the hold
// between the two (no state change and no VMM access gets in).
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <future>
#include <thread>

#include "hvmm/vmm/memory/guest_physical.h"

namespace hvmm::vmm {
namespace {

using stage2::Backing;
using stage2::ChangeReason;
using namespace std::chrono_literals;

constexpr uint64_t kRam = 4 << 20;
// The 16-page window the tests classify in, at IPA 1 MiB (64 KiB aligned).
constexpr Ipa kWindowStart(1 << 20);
constexpr IpaRange kWindow{kWindowStart, 16 * kPageSize};

// The IPA of page `n` of the window.
constexpr Ipa page(uint64_t n) {
  return kWindowStart + n * kPageSize;
}
// The run of `count` pages from page `first` of the window.
constexpr IpaRange pages(uint64_t first, uint64_t count) {
  return IpaRange{page(first), count * kPageSize};
}

// A GuestPhysical whose window holds, page by page:
//   0-3 resident and allocated, 4-7 resident holes, 8-9 ballooned, 10-11 reported,
//   12 reclaimed, 13-15 resident holes.
struct GuestPhysicalFaultsTest : ::testing::Test {
  void SetUp() override {
    auto created = GuestPhysical::create(kRam, "guest-physical-faults-test", 1);
    ASSERT_TRUE(created.ok()) << created.error().message;
    physical = std::move(*created);
    const std::vector<uint8_t> data(4 * kPageSize, 0x5a);
    ASSERT_TRUE(physical->write(page(0), data).ok());
    ASSERT_TRUE(
        physical->set_backing(pages(8, 2), Backing::kBallooned, ChangeReason::kBalloon).ok());
    ASSERT_TRUE(
        physical->set_backing(pages(10, 2), Backing::kReported, ChangeReason::kFreePageReport)
            .ok());
    ASSERT_TRUE(
        physical->set_backing(pages(12, 1), Backing::kReclaimed, ChangeReason::kReclaim).ok());
  }

  // Classify `ipa` in the window and finish at once (unfilled), returning the run.
  FaultRun classify_and_release(Ipa ipa) {
    auto run = physical->classify(ipa, kWindow);
    EXPECT_TRUE(run.ok()) << run.error().message;
    if (!run.ok())
      return FaultRun{};
    physical->finish(*run, false);
    return *run;
  }

  // Write `byte` into the pages of `run` through the alias, behind the map, as a fill does.
  void fill_behind_the_map(IpaRange run, uint8_t byte) {
    std::memset(physical->memory().alias_base() + run.start.value(), byte, run.size);
  }

  // The backing the map gives `ipa`'s page.
  Backing backing_at(Ipa ipa) const { return physical->map().translate(ipa)->state.backing; }

  std::unique_ptr<GuestPhysical> physical;
};

// Every page gets the largest run of its own condition inside the window, never crossing a
// page of another one.
TEST_F(GuestPhysicalFaultsTest, ClassifiesRunsOfMixedStates) {
  const struct {
    uint64_t faulting;
    IpaRange run;
    PageCondition condition;
  } cases[] = {
      {2, pages(0, 4), PageCondition::kPresent},    {5, pages(4, 4), PageCondition::kAbsent},
      {4, pages(4, 4), PageCondition::kAbsent},     {9, pages(8, 2), PageCondition::kBallooned},
      {10, pages(10, 2), PageCondition::kReported}, {12, pages(12, 1), PageCondition::kReclaimed},
      {15, pages(13, 3), PageCondition::kAbsent},
  };
  for (const auto& c : cases) {
    FaultRun run = classify_and_release(page(c.faulting) + 0x123);
    EXPECT_EQ(run.range, c.run) << "page " << c.faulting;
    EXPECT_EQ(run.condition, c.condition) << "page " << c.faulting;
  }
}

// A window of untouched RAM is one absent run, as large as the window.
TEST_F(GuestPhysicalFaultsTest, UntouchedWindowIsOneAbsentRun) {
  const IpaRange window{Ipa(2 << 20), 2 << 20};
  auto run = physical->classify(Ipa(3 << 20), window);
  ASSERT_TRUE(run.ok()) << run.error().message;
  physical->finish(*run, false);
  EXPECT_EQ(run->range, window);
  EXPECT_EQ(run->condition, PageCondition::kAbsent);
}

// A filled ballooned or reported run becomes resident, counted as such; an absent run stays
// resident; the counts kept by the changes still match a walk of the map.
TEST_F(GuestPhysicalFaultsTest, FinishRecordsFilledRunsResident) {
  for (uint64_t faulting : {8u, 10u, 5u}) {
    auto run = physical->classify(page(faulting), kWindow);
    ASSERT_TRUE(run.ok()) << run.error().message;
    fill_behind_the_map(run->range, 0);
    physical->finish(*run, true);
  }
  for (uint64_t n = 0; n < 12; ++n) {
    EXPECT_EQ(backing_at(page(n)), Backing::kResident) << "page " << n;
  }
  const PageCounts counts = physical->page_counts();
  EXPECT_EQ(counts[Backing::kBallooned], 0u);
  EXPECT_EQ(counts[Backing::kReported], 0u);
  EXPECT_EQ(counts[Backing::kReclaimed], 1u);
  EXPECT_EQ(counts, physical->count_pages_by_walk());
}

// An unfilled run keeps its state, and a partial fill of a ballooned run is punched again:
// a non-resident page is never left allocated in the memfd.
TEST_F(GuestPhysicalFaultsTest, UnfilledRunStaysNonResidentAndUnallocated) {
  auto before = physical->allocated_bytes();
  ASSERT_TRUE(before.ok());
  auto run = physical->classify(page(8), kWindow);
  ASSERT_TRUE(run.ok()) << run.error().message;
  fill_behind_the_map(pages(8, 1), 0x77);
  physical->finish(*run, false);
  EXPECT_EQ(backing_at(page(8)), Backing::kBallooned);
  EXPECT_EQ(physical->page_counts()[Backing::kBallooned], 2u);
  auto after = physical->allocated_bytes();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, *before);
}

// A reclaimed run stays reclaimed (and unallocated) when finish() is told it was not
// filled, and becomes resident, counted as such, when it was (its contents restored).
TEST_F(GuestPhysicalFaultsTest, ReclaimedRunIsResidentOnlyOnceFilled) {
  auto run = physical->classify(page(12), kWindow);
  ASSERT_TRUE(run.ok()) << run.error().message;
  fill_behind_the_map(run->range, 0x42);
  physical->finish(*run, false);
  EXPECT_EQ(backing_at(page(12)), Backing::kReclaimed);
  auto extent = physical->memory().extent_around(
      HostOffset(page(12).value()), HostRange{HostOffset(page(12).value()), kPageSize});
  ASSERT_TRUE(extent.ok());
  EXPECT_FALSE(extent->allocated) << "the partial fill was punched again";
  run = physical->classify(page(12), kWindow);
  ASSERT_TRUE(run.ok()) << run.error().message;
  fill_behind_the_map(run->range, 0x42);
  physical->finish(*run, true);
  EXPECT_EQ(backing_at(page(12)), Backing::kResident);
  EXPECT_EQ(physical->page_counts()[Backing::kReclaimed], 0u);
  EXPECT_EQ(physical->page_counts(), physical->count_pages_by_walk());
}

// Between classify() and finish() a balloon inflate of the run and a VMM read that misses
// the stage-2 TLB (page 14 was never accessed) both wait; they go through once finish()
// released the hold. (A TLB hit needs no lock: it cannot be of a page that is changing.)
TEST_F(GuestPhysicalFaultsTest, HoldsOffChangesUntilFinish) {
  auto run = physical->classify(page(5), kWindow);
  ASSERT_TRUE(run.ok()) << run.error().message;
  auto inflate = std::async(std::launch::async, [&] {
    return physical->set_backing(run->range, Backing::kBallooned, ChangeReason::kBalloon).ok();
  });
  auto read = std::async(std::launch::async, [&] {
    std::vector<uint8_t> out(8);
    return physical->read(page(14), out).ok();
  });
  EXPECT_EQ(inflate.wait_for(200ms), std::future_status::timeout);
  EXPECT_EQ(read.wait_for(10ms), std::future_status::timeout);
  physical->finish(*run, true);
  ASSERT_EQ(inflate.wait_for(5s), std::future_status::ready);
  ASSERT_EQ(read.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(inflate.get());
  EXPECT_TRUE(read.get());
  EXPECT_EQ(backing_at(page(5)), Backing::kBallooned);
}

// A fault outside RAM is an error and leaves the lock free.
TEST_F(GuestPhysicalFaultsTest, OutsideRamIsAnErrorWithoutHold) {
  const IpaRange window{Ipa(64 << 20), kPageSize};
  auto run = physical->classify(Ipa(64 << 20), window);
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.error().message.find("not guest RAM"), std::string::npos) << run.error().message;
  auto counts = std::async(std::launch::async, [&] { return physical->page_counts().total(); });
  ASSERT_EQ(counts.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(counts.get(), kRam / kPageSize);
}

}  // namespace
}  // namespace hvmm::vmm
