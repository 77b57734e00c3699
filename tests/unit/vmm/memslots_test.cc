// Tests that KVM memslots (here recorded by a fake sink) are one per RAM region, change only
// with the layout (unmap_ram), never with page states, and that unmapped RAM is released.
#include "hvmm/vmm/memory/memslots.h"

#include <gtest/gtest.h>

#include <chrono>
#include <latch>
#include <map>
#include <semaphore>
#include <thread>

#include "hvmm/vmm/memory/guest_physical.h"

namespace hvmm::vmm {
namespace {

using stage2::Backing;
using stage2::ChangeReason;

// RecordingSink plays KVM: it holds the installed slots by id and checks KVM's rules (no
// overlap between live slots, deletes name live slots).
class RecordingSink final : public MemslotSink {
 public:
  Result<void> set_memslot(const Memslot& slot, void* host) override {
    ++calls;
    if (slot.range.size == 0) {
      EXPECT_EQ(slots.erase(slot.slot), 1u) << "delete of unknown slot " << slot.slot;
      return Ok();
    }
    for (const auto& [id, live] : slots) {
      bool overlap = slot.range.start < live.range.end() && live.range.start < slot.range.end();
      EXPECT_FALSE(overlap) << "slot " << slot.slot << " overlaps live slot " << id;
    }
    EXPECT_NE(host, nullptr);
    slots[slot.slot] = slot;
    hosts[slot.slot] = host;
    return Ok();
  }
  std::map<uint32_t, Memslot> slots;
  std::map<uint32_t, void*> hosts;
  int calls = 0;
};

constexpr uint64_t kRam = 8 << 20;

// A GuestPhysical of kRam with the recording sink attached.
struct MemslotFixture : ::testing::Test {
  void SetUp() override {
    auto created = GuestPhysical::create(kRam, "memslot-test", 1);
    ASSERT_TRUE(created.ok()) << created.error().message;
    physical = std::move(*created);
    ASSERT_TRUE(physical->attach_memslots(sink).ok());
  }
  RecordingSink sink;
  std::unique_ptr<GuestPhysical> physical;
};

// Attaching installs one slot covering all of RAM at host offset 0, over the primary
// mapping (the one userfaultfd registers), not the alias the VMM accesses through.
TEST_F(MemslotFixture, InitialSlotCoversRam) {
  ASSERT_EQ(sink.slots.size(), 1u);
  const Memslot& slot = sink.slots.begin()->second;
  EXPECT_EQ(slot.range, (IpaRange{Ipa(0), kRam}));
  EXPECT_EQ(slot.offset, HostOffset(0));
  EXPECT_EQ(sink.hosts.begin()->second, physical->memory().guest_base());
  EXPECT_NE(physical->memory().guest_base(), physical->memory().alias_base());
}

// Balloon inflate, free page reporting and deflate over many scattered runs never touch a
// memslot: the one slot stays as installed.
TEST_F(MemslotFixture, PageStateChangesLeaveSlotsAlone) {
  const int calls = sink.calls;
  for (uint64_t page = 1; page < 200; page += 3) {
    const IpaRange run{Ipa(page * kPageSize), kPageSize};
    ASSERT_TRUE(physical->set_backing(run, Backing::kBallooned, ChangeReason::kBalloon).ok());
  }
  ASSERT_TRUE(physical
                  ->set_backing(IpaRange{Ipa(0x400000), 0x200000}, Backing::kReported,
                                ChangeReason::kFreePageReport)
                  .ok());
  ASSERT_TRUE(
      physical->set_backing(IpaRange{Ipa(0), kRam}, Backing::kResident, ChangeReason::kBalloon)
          .ok());
  EXPECT_EQ(sink.calls, calls);
  ASSERT_EQ(physical->memslots()->slots().size(), 1u);
  EXPECT_EQ(physical->memslots()->slots()[0].range, (IpaRange{Ipa(0), kRam}));
}

// Unmapping the middle is a layout change: the region splits and so does its slot, the
// upper piece keeping the host offsets of its pages.
TEST_F(MemslotFixture, UnmapSplitsSlot) {
  ASSERT_TRUE(physical->unmap_ram(IpaRange{Ipa(0x200000), 0x1000}).ok());
  ASSERT_EQ(sink.slots.size(), 2u);
  const auto& slots = physical->memslots()->slots();
  ASSERT_EQ(slots.size(), 2u);
  EXPECT_EQ(slots[0].range, (IpaRange{Ipa(0), 0x200000}));
  EXPECT_EQ(slots[1].range, (IpaRange{Ipa(0x201000), kRam - 0x201000}));
  EXPECT_EQ(slots[1].offset, HostOffset(0x201000));
  ASSERT_EQ(physical->ram().size(), 2u);
  EXPECT_EQ(physical->ram()[1].offset, HostOffset(0x201000));
}

// Unmapped RAM is released (its memfd page becomes a hole) while its neighbours keep their
// contents, and the translator refuses the unmapped IPA.
TEST_F(MemslotFixture, UnmapReleasesBacking) {
  std::vector<uint8_t> pattern(3 * kPageSize, 0xab);
  ASSERT_TRUE(physical->write(Ipa(0x400000), pattern).ok());
  ASSERT_TRUE(physical->unmap_ram(IpaRange{Ipa(0x401000), kPageSize}).ok());
  auto extents = physical->memory().allocated_extents();
  ASSERT_TRUE(extents.ok());
  EXPECT_EQ(*extents, (std::vector<HostRange>{{HostOffset(0x400000), kPageSize},
                                              {HostOffset(0x402000), kPageSize}}));
  uint8_t* host = *physical->memory().host_pointer(HostOffset(0x400000), 3 * kPageSize);
  EXPECT_EQ(host[0], 0xab);
  EXPECT_EQ(host[3 * kPageSize - 1], 0xab);
  std::vector<uint8_t> out(4);
  EXPECT_FALSE(physical->read(Ipa(0x401000), out).ok());
  EXPECT_FALSE(physical->is_ram(Ipa(0x401000)));
  EXPECT_EQ(physical->page_counts()[Backing::kResident], kRam / kPageSize - 1);
}

// Reads and writes round-trip through the translator and across leaf boundaries.
TEST_F(MemslotFixture, ReadWriteRoundTrip) {
  std::vector<uint8_t> data(3 * kPageSize);
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = static_cast<uint8_t>(i * 7);
  }
  ASSERT_TRUE(physical->write(Ipa(0x1ff800), data).ok());
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(physical->read(Ipa(0x1ff800), back).ok());
  EXPECT_EQ(back, data);
  std::vector<uint8_t> beyond(8);
  EXPECT_FALSE(physical->read(Ipa(kRam - 4), beyond).ok());
}

// RAM above the MMIO hole is a second region and gets its own slot, at the host offset
// where the low region ends.
TEST(Memslots, EachRegionHasItsSlot) {
  constexpr uint64_t kBig = kMmioHoleStart + (8 << 20);
  auto created = GuestPhysical::create(kBig, "memslot-two", 1);
  ASSERT_TRUE(created.ok()) << created.error().message;
  RecordingSink sink;
  ASSERT_TRUE((*created)->attach_memslots(sink).ok());
  const auto& slots = (*created)->memslots()->slots();
  ASSERT_EQ(slots.size(), 2u);
  EXPECT_EQ(slots[0].range, (IpaRange{Ipa(0), kMmioHoleStart}));
  EXPECT_EQ(slots[1].range, (IpaRange{Ipa(kMmioHoleEnd), 8 << 20}));
  EXPECT_EQ(slots[1].offset, HostOffset(kMmioHoleStart));
  EXPECT_EQ(sink.calls, 2);
}

// FlaggedSink is a RecordingSink that asks for KVM_MEM_LOG_DIRTY_PAGES (bit 0) on its slots,
// as dirty tracking does.
class FlaggedSink final : public MemslotSink {
 public:
  Result<void> set_memslot(const Memslot& slot, void* host) override {
    return recorder.set_memslot(slot, host);
  }
  uint32_t slot_flags() const override { return 1; }
  RecordingSink recorder;
};

// Every slot carries the sink's flags, and so do the slots a layout change recreates; a sink
// that asks for none (the default) gets none.
TEST(Memslots, SlotsCarryTheSinksFlags) {
  auto created = GuestPhysical::create(kRam, "memslot-flags", 1);
  ASSERT_TRUE(created.ok()) << created.error().message;
  FlaggedSink sink;
  ASSERT_TRUE((*created)->attach_memslots(sink).ok());
  ASSERT_EQ(sink.recorder.slots.size(), 1u);
  EXPECT_EQ(sink.recorder.slots.begin()->second.flags, 1u);
  ASSERT_TRUE((*created)->unmap_ram(IpaRange{Ipa(0x200000), 0x1000}).ok());
  ASSERT_EQ(sink.recorder.slots.size(), 2u);
  for (const auto& [id, slot] : sink.recorder.slots) {
    EXPECT_EQ(slot.flags, 1u) << "slot " << id;
  }
  for (const Memslot& slot : (*created)->memslots()->slots()) {
    EXPECT_EQ(slot.flags, 1u);
  }
  auto plain = GuestPhysical::create(kRam, "memslot-plain", 1);
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  RecordingSink unflagged;
  ASSERT_TRUE((*plain)->attach_memslots(unflagged).ok());
  EXPECT_EQ(unflagged.slots.begin()->second.flags, 0u);
}

// ram_without drops covered regions, shrinks cut ones and splits pierced ones, the upper
// piece keeping its host offsets.
TEST(MemoryLayout, RamWithoutReshapesRegions) {
  const std::vector<RamRegion> ram = {{IpaRange{Ipa(0), 0x10000}, HostOffset(0)},
                                      {IpaRange{Ipa(0x100000), 0x10000}, HostOffset(0x10000)}};
  auto pierced = ram_without(ram, IpaRange{Ipa(0x4000), 0x1000});
  ASSERT_EQ(pierced.size(), 3u);
  EXPECT_EQ(pierced[0].range, (IpaRange{Ipa(0), 0x4000}));
  EXPECT_EQ(pierced[1].range, (IpaRange{Ipa(0x5000), 0xb000}));
  EXPECT_EQ(pierced[1].offset, HostOffset(0x5000));
  auto across = ram_without(ram, IpaRange{Ipa(0x8000), 0x100000});
  ASSERT_EQ(across.size(), 2u);
  EXPECT_EQ(across[0].range, (IpaRange{Ipa(0), 0x8000}));
  EXPECT_EQ(across[1].range, (IpaRange{Ipa(0x108000), 0x8000}));
  EXPECT_EQ(across[1].offset, HostOffset(0x18000));
  EXPECT_TRUE(ram_without(ram, IpaRange{Ipa(0), 0x200000}).empty());
  EXPECT_EQ(ram_without(ram, IpaRange{Ipa(0x20000), 0x1000}).size(), 2u);
}

// SlowSink plays the VM's first KVM_SET_USER_MEMORY_REGION, which sleeps in KVM: it signals
// `entered`, then waits (at most 5 s, recording a timeout) for the test to release it.
class SlowSink final : public MemslotSink {
 public:
  Result<void> set_memslot(const Memslot& /*slot*/, void* /*host*/) override {
    entered.count_down();
    timed_out = !release.try_acquire_for(std::chrono::seconds(5));
    return Ok();
  }
  std::latch entered{1};
  std::binary_semaphore release{0};
  bool timed_out = false;
};

// While the memslots are being installed on another thread (as Machine::build does it),
// guest memory can be written and read through the translator: the install holds the map
// lock only shared. Under the exclusive lock the write would wait out the 5 s timeout.
TEST(Memslots, InstallLetsGuestAccessesProceed) {
  auto created = GuestPhysical::create(kRam, "memslot-overlap", 1);
  ASSERT_TRUE(created.ok()) << created.error().message;
  GuestPhysical& physical = **created;
  SlowSink sink;
  Result<void> attached;
  std::jthread attach([&] { attached = physical.attach_memslots(sink); });
  sink.entered.wait();
  const std::vector<uint8_t> data(64, 0x5a);
  EXPECT_TRUE(physical.write(Ipa(0x100000), data).ok());
  std::vector<uint8_t> back(data.size());
  EXPECT_TRUE(physical.read(Ipa(0x100000), back).ok());
  sink.release.release();
  attach.join();
  EXPECT_FALSE(sink.timed_out) << "the guest access waited for the memslot install";
  EXPECT_TRUE(attached.ok());
  EXPECT_EQ(back, data);
  ASSERT_EQ(physical.memslots()->slots().size(), 1u);
}

}  // namespace
}  // namespace hvmm::vmm
