// Tests that KVM memslots (here recorded by a fake sink) always equal the resident RAM of
// the stage-2 map, and that unmapped RAM is really released from the memfd.
#include "hvmm/vmm/memory/memslot_sync.h"

#include <gtest/gtest.h>

#include <chrono>
#include <latch>
#include <map>
#include <random>
#include <semaphore>
#include <thread>

#include "hvmm/vmm/memory/guest_physical.h"

namespace hvmm::vmm {
namespace {

using stage2::kRamAttributes;

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
    return Ok();
  }
  // Total bytes per guest page index covered by a slot, with the expected host offset.
  std::map<uint64_t, uint64_t> pages() const {
    std::map<uint64_t, uint64_t> covered;
    for (const auto& [id, slot] : slots) {
      for (uint64_t off = 0; off < slot.range.size; off += kPageSize) {
        covered[(slot.range.start + off).page_number()] = slot.offset.value() + off;
      }
    }
    return covered;
  }
  std::map<uint32_t, Memslot> slots;
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

// Attaching installs one slot covering all of RAM at host offset 0.
TEST_F(MemslotFixture, InitialSlotCoversRam) {
  ASSERT_EQ(sink.slots.size(), 1u);
  const Memslot& slot = sink.slots.begin()->second;
  EXPECT_EQ(slot.range, (IpaRange{Ipa(0), kRam}));
  EXPECT_EQ(slot.offset, HostOffset(0));
  EXPECT_FALSE(slot.read_only);
}

// Unmapping the middle splits the slot in two around the hole.
TEST_F(MemslotFixture, UnmapSplitsSlot) {
  ASSERT_TRUE(physical->unmap_ram(IpaRange{Ipa(0x200000), 0x1000}).ok());
  ASSERT_EQ(sink.slots.size(), 2u);
  auto pages = sink.pages();
  EXPECT_EQ(pages.count(0x200), 0u);
  EXPECT_EQ(pages.at(0x1ff), 0x1ff000u);
  EXPECT_EQ(pages.at(0x201), 0x201000u);
}

// Unmapped RAM is released: the memfd pages read zero again (MADV_REMOVE), while their
// neighbours keep their contents, and the translator refuses the unmapped IPA.
TEST_F(MemslotFixture, UnmapReleasesBacking) {
  std::vector<uint8_t> pattern(3 * kPageSize, 0xab);
  ASSERT_TRUE(physical->write(Ipa(0x400000), pattern).ok());
  ASSERT_TRUE(physical->unmap_ram(IpaRange{Ipa(0x401000), kPageSize}).ok());
  uint8_t* host = *physical->memory().host_pointer(HostOffset(0x400000), 3 * kPageSize);
  EXPECT_EQ(host[0], 0xab);
  EXPECT_EQ(host[kPageSize], 0);
  EXPECT_EQ(host[2 * kPageSize - 1], 0);
  EXPECT_EQ(host[2 * kPageSize], 0xab);
  std::vector<uint8_t> out(4);
  auto read = physical->read(Ipa(0x401000), out);
  ASSERT_FALSE(read.ok());
  EXPECT_FALSE(physical->is_ram(Ipa(0x401000)));
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

// While the initial sync is inside the memslot ioctl on another thread (as Machine::build
// runs it), guest memory can be written and read through the translator: the sync holds the
// map lock only shared. Under the exclusive lock the write would wait out the 5 s timeout.
TEST(MemslotSync, InitialSyncLetsGuestAccessesProceed) {
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
  EXPECT_FALSE(sink.timed_out) << "the guest access waited for the initial memslot sync";
  EXPECT_TRUE(attached.ok());
  EXPECT_EQ(back, data);
  ASSERT_EQ(physical.memslots()->slots().size(), 1u);
}

// A read-only range becomes its own KVM_MEM_READONLY slot; making it writable again merges
// the slots back into one.
TEST(MemslotSync, ReadOnlyRangeGetsReadOnlySlot) {
  auto memory = GuestMemory::create(kRam, "memslot-ro");
  ASSERT_TRUE(memory.ok());
  stage2::HeapTableAllocator tables;
  auto map = stage2::Stage2Map::create(*stage2::IpaSpace::create(kIpaBits), tables);
  ASSERT_TRUE(map.ok());
  ASSERT_TRUE(map->map(IpaRange{Ipa(0), kRam}, HostOffset(0), kRamAttributes).ok());
  RecordingSink sink;
  MemslotSync sync(*map, **memory, sink);
  ASSERT_TRUE(sync.sync().ok());
  map->add_hooks(sync);
  IpaRange rom{Ipa(0x100000), 0x10000};
  ASSERT_TRUE(map->protect(rom, stage2::Permissions::kReadOnly, true).ok());
  ASSERT_EQ(sync.slots().size(), 3u);
  EXPECT_EQ(sync.slots()[1].range, rom);
  EXPECT_TRUE(sync.slots()[1].read_only);
  EXPECT_FALSE(sync.slots()[0].read_only);
  ASSERT_TRUE(map->protect(rom, stage2::Permissions::kReadWrite, true).ok());
  ASSERT_EQ(sync.slots().size(), 1u);
  EXPECT_EQ(sync.slots()[0].range, (IpaRange{Ipa(0), kRam}));
  map->remove_hooks(sync);
}

// Random map/unmap sequences against a page-set model: after every change the slots cover
// exactly the mapped pages, each at its own host offset, with no overlaps.
TEST(MemslotSync, RandomChangesMatchModel) {
  auto memory = GuestMemory::create(kRam, "memslot-random");
  ASSERT_TRUE(memory.ok());
  stage2::HeapTableAllocator tables;
  auto map = stage2::Stage2Map::create(*stage2::IpaSpace::create(kIpaBits), tables);
  ASSERT_TRUE(map.ok());
  RecordingSink sink;
  MemslotSync sync(*map, **memory, sink);
  map->add_hooks(sync);
  std::map<uint64_t, uint64_t> model;  // page -> host offset
  std::mt19937_64 random(7);
  const uint64_t pages = kRam / kPageSize;
  for (int step = 0; step < 300; ++step) {
    uint64_t first = random() % pages;
    uint64_t count = 1 + random() % std::min<uint64_t>(64, pages - first);
    IpaRange range{Ipa(first * kPageSize), count * kPageSize};
    if (random() % 2 == 0) {
      bool free = true;
      for (uint64_t p = first; p < first + count; ++p) {
        free = free && model.count(p) == 0;
      }
      if (!free) {
        continue;
      }
      ASSERT_TRUE(map->map(range, HostOffset(first * kPageSize), kRamAttributes).ok());
      for (uint64_t p = first; p < first + count; ++p) {
        model[p] = p * kPageSize;
      }
    } else {
      ASSERT_TRUE(map->unmap(range).ok());
      for (uint64_t p = first; p < first + count; ++p) {
        model.erase(p);
      }
    }
    ASSERT_FALSE(sync.hook_error().has_value()) << sync.hook_error()->message;
    ASSERT_EQ(sink.pages(), model) << "after step " << step;
  }
  map->remove_hooks(sync);
}

}  // namespace
}  // namespace hvmm::vmm
