// Tests of the dirty ring's user side against fake rings in memory: entries taken in order
// up to the first one KVM has not published, across the ring's wrap, marked harvested; and
// DirtyRing's harvest (conversion through the slots, each page once, the reset) and its
// ring-full path.
#include "hvmm/vmm/reclaim/dirty/dirty_ring.h"

#include <gtest/gtest.h>

#include <vector>

#include "dirty_test_support.h"

namespace hvmm::vmm {
namespace {

using testing::FakeSlots;
using testing::logging_slot;

// KVM's side of a fake ring: publish entry `index` (mod the size) for page `offset` of `slot`.
void publish(std::vector<kvm_dirty_gfn>& ring, uint32_t index, uint32_t slot, uint64_t offset) {
  kvm_dirty_gfn& entry = ring[index % ring.size()];
  entry.slot = slot;
  entry.offset = offset;
  entry.flags = KVM_DIRTY_GFN_F_DIRTY;
}

// Everything one reader harvest takes.
std::vector<DirtyGfn> take(DirtyRingReader& reader) {
  std::vector<DirtyGfn> taken;
  reader.harvest([&](DirtyGfn gfn) { taken.push_back(gfn); });
  return taken;
}

// Published entries are taken in order up to the first unpublished one, each marked
// harvested (RESET) for KVM; the next harvest resumes where the last stopped.
TEST(DirtyRingReader, TakesPublishedEntriesInOrder) {
  std::vector<kvm_dirty_gfn> ring(8, kvm_dirty_gfn{});
  publish(ring, 0, 0, 10);
  publish(ring, 1, 1, 20);
  publish(ring, 2, 0, 30);
  ring[4].flags = KVM_DIRTY_GFN_F_DIRTY;  // beyond an unpublished entry: must wait its turn
  DirtyRingReader reader(ring);
  EXPECT_EQ(take(reader), (std::vector<DirtyGfn>{{0, 10}, {1, 20}, {0, 30}}));
  EXPECT_EQ(reader.fetch_index(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ring[i].flags, KVM_DIRTY_GFN_F_RESET) << "entry " << i;
  }
  EXPECT_EQ(ring[4].flags, KVM_DIRTY_GFN_F_DIRTY);
  EXPECT_TRUE(take(reader).empty());
  publish(ring, 3, 2, 40);
  EXPECT_EQ(take(reader), (std::vector<DirtyGfn>{{2, 40}, {0, 0}}));  // entry 4 now in turn
}

// A reader near the end of the ring continues at its start (the index runs freely, the slot
// is the index modulo the size).
TEST(DirtyRingReader, FollowsTheWrap) {
  std::vector<kvm_dirty_gfn> ring(8, kvm_dirty_gfn{});
  for (uint32_t index = 6; index < 10; ++index) {
    publish(ring, index, 0, index);
  }
  DirtyRingReader reader(ring, 6);
  EXPECT_EQ(take(reader), (std::vector<DirtyGfn>{{0, 6}, {0, 7}, {0, 8}, {0, 9}}));
  EXPECT_EQ(reader.fetch_index(), 10u);
  EXPECT_EQ(ring[1].flags, KVM_DIRTY_GFN_F_RESET);
  EXPECT_EQ(ring[2].flags, 0u);
}

// A full ring is taken in one lap, no more; after the lap the reader meets its own RESET
// marks (KVM has not recycled them yet) and stops instead of reading them again.
TEST(DirtyRingReader, OneLapAtMostAndNeverItsOwnMarks) {
  std::vector<kvm_dirty_gfn> ring(4, kvm_dirty_gfn{});
  for (uint32_t index = 0; index < 4; ++index) {
    publish(ring, index, 0, 100 + index);
  }
  DirtyRingReader reader(ring);
  EXPECT_EQ(take(reader).size(), 4u);
  EXPECT_TRUE(take(reader).empty());
  ring[0].flags |= KVM_DIRTY_GFN_F_DIRTY;  // 11b: still harvested, not a new entry
  EXPECT_TRUE(take(reader).empty());
}

constexpr uint64_t kHigh = uint64_t{4} << 30;

// Two vCPU rings of 16 entries over two slots, with a counting fake reset.
struct DirtyRingFixture : ::testing::Test {
  DirtyRingFixture()
      : ring0(16, kvm_dirty_gfn{}),
        ring1(16, kvm_dirty_gfn{}),
        tracker(
            [this]() -> Result<uint64_t> {
              ++resets;
              if (fail_reset) {
                return make_error(ErrorCode::kInternal,
                                  "KVM_RESET_DIRTY_RINGS failed: Bad address");
              }
              return uint64_t{0};
            },
            slots) {
    slots.slots = {logging_slot(0, 0, 1000), logging_slot(1, kHigh, 100, 1000 * kPageSize)};
    tracker.add_ring(0, ring0);
    tracker.add_ring(1, ring1);
  }
  // The runs of one harvest, which must succeed.
  std::vector<IpaRange> harvest() {
    std::vector<IpaRange> runs;
    auto harvested = tracker.harvest([&](IpaRange run) { runs.push_back(run); });
    EXPECT_TRUE(harvested.ok()) << harvested.error().message;
    return runs;
  }
  FakeSlots slots;
  std::vector<kvm_dirty_gfn> ring0;
  std::vector<kvm_dirty_gfn> ring1;
  int resets = 0;
  bool fail_reset = false;
  DirtyRing tracker;
};

// Entries from both rings become IPA pages of their slots, sorted, a page dirtied by both
// vCPUs once, neighbours coalesced; the rings are reset once per harvest.
TEST_F(DirtyRingFixture, HarvestConvertsAndDeduplicates) {
  publish(ring0, 0, 0, 7);
  publish(ring0, 1, 1, 3);
  publish(ring1, 0, 0, 8);
  publish(ring1, 1, 0, 7);  // the same page from the other vCPU
  publish(ring1, 2, 0, 6);
  EXPECT_EQ(harvest(), (std::vector<IpaRange>{{Ipa(6 * kPageSize), 3 * kPageSize},
                                              {Ipa(kHigh + 3 * kPageSize), kPageSize}}));
  EXPECT_EQ(resets, 1);
  EXPECT_EQ(tracker.stats().dirty_pages, 4u);
  EXPECT_EQ(tracker.stats().harvests, 1u);
  EXPECT_TRUE(harvest().empty());
}

// An entry naming a slot that is not installed (deleted by a layout change), or a page past
// its slot's end, is dropped and counted, not reported somewhere else.
TEST_F(DirtyRingFixture, UnknownSlotsAreDropped) {
  publish(ring0, 0, 5, 1);
  publish(ring0, 1, 1, 100);       // slot 1 has 100 pages: 0..99
  publish(ring0, 2, 1u << 16, 1);  // address space 1 (SMM): not a slot of ours
  publish(ring0, 3, 0, 2);
  EXPECT_EQ(harvest(), (std::vector<IpaRange>{{Ipa(2 * kPageSize), kPageSize}}));
  EXPECT_EQ(tracker.unknown_entries(), 3u);
}

// A ring-full exit moves that vCPU's entries aside and resets, so KVM has room at once; the
// next harvest reports them together with what came later.
TEST_F(DirtyRingFixture, RingFullEntriesReachTheNextHarvest) {
  for (uint32_t i = 0; i < 16; ++i) {
    publish(ring1, i, 0, 100 + i);
  }
  ASSERT_TRUE(tracker.ring_full(1).ok());
  EXPECT_EQ(resets, 1);
  EXPECT_EQ(ring1[15].flags, KVM_DIRTY_GFN_F_RESET);
  for (uint32_t i = 0; i < 16; ++i) {
    ring1[i].flags = 0;  // what KVM_RESET_DIRTY_RINGS does to harvested entries
  }
  publish(ring1, 16, 0, 116);
  EXPECT_EQ(harvest(), (std::vector<IpaRange>{{Ipa(100 * kPageSize), 17 * kPageSize}}));
  EXPECT_EQ(tracker.stats().ring_full_exits, 1u);
}

// A ring-full exit of a vCPU without a ring, and a ring that stays full with nothing to take
// (re-entering would exit again at once), are errors: the vCPU stops instead of spinning.
TEST_F(DirtyRingFixture, RingFullThatCannotMakeRoomFails) {
  auto unknown = tracker.ring_full(7);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("vCPU 7"), std::string::npos);
  Result<void> full = Ok();
  int calls = 0;
  while (full.ok() && calls < 100) {
    full = tracker.ring_full(0);
    ++calls;
  }
  ASSERT_FALSE(full.ok());
  EXPECT_LT(calls, 100);
  EXPECT_NE(full.error().message.find("stays full"), std::string::npos);
}

// A failed reset fails the harvest, naming the ioctl; the pages taken are still reported.
TEST_F(DirtyRingFixture, FailedResetIsReported) {
  publish(ring0, 0, 0, 1);
  fail_reset = true;
  std::vector<IpaRange> runs;
  auto harvested = tracker.harvest([&](IpaRange run) { runs.push_back(run); });
  ASSERT_FALSE(harvested.ok());
  EXPECT_NE(harvested.error().message.find("KVM_RESET_DIRTY_RINGS"), std::string::npos);
  EXPECT_EQ(runs, (std::vector<IpaRange>{{Ipa(kPageSize), kPageSize}}));
}

}  // namespace
}  // namespace hvmm::vmm
