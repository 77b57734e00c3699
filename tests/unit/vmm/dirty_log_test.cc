// Tests of DirtyLog against a fake KVM dirty log: runs across slots, exactly the reported
// pages re-armed (with KVM's 64-page rules checked by the fake), no write lost between the
// get and the clear, and errors that name the slot.
#include "hvmm/vmm/reclaim/dirty/dirty_log.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "dirty_test_support.h"

namespace hvmm::vmm {
namespace {

using testing::FakeSlots;
using testing::logging_slot;

// FakeDirtyLog plays KVM with manual protect: one bitmap per slot that "guest writes" set,
// copied by get and cleared only where a clear's bitmap says so. It checks what KVM checks.
class FakeDirtyLog final : public DirtyLogIoctls {
 public:
  explicit FakeDirtyLog(const FakeSlots& slots) : slots_(slots) {}

  Result<void> get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap) override {
    ++gets;
    auto& dirty = bitmap_of(slot);
    EXPECT_EQ(bitmap.size(), dirty.size()) << "bitmap of slot " << slot << " mis-sized";
    if (fail_slot == slot) {
      return make_error(ErrorCode::kInternal, "KVM_GET_DIRTY_LOG failed: No such file");
    }
    std::copy(dirty.begin(), dirty.end(), bitmap.begin());
    if (after_get) {
      after_get();
    }
    return Ok();
  }
  Result<void> clear_dirty_log(uint32_t slot, ClearRange range,
                               std::span<const uint64_t> bitmap) override {
    clears.push_back({slot, range});
    const uint64_t pages = pages_of(slot);
    Result<void> legal = check_clear_range(range, pages);
    EXPECT_TRUE(legal.ok()) << legal.error().message;
    auto& dirty = bitmap_of(slot);
    for (uint64_t i = 0; i < range.num_pages; ++i) {
      if ((bitmap[i / 64] >> (i % 64)) & 1) {
        const uint64_t page = range.first_page + i;
        dirty[page / 64] &= ~(uint64_t{1} << (page % 64));
      }
    }
    return Ok();
  }

  // The guest writes page `page` of `slot`.
  void write(uint32_t slot, uint64_t page) {
    bitmap_of(slot)[page / 64] |= uint64_t{1} << (page % 64);
  }
  uint64_t pages_of(uint32_t slot) const {
    for (const Memslot& s : slots_.slots) {
      if (s.slot == slot) {
        return s.pages();
      }
    }
    ADD_FAILURE() << "no slot " << slot;
    return 0;
  }
  std::vector<uint64_t>& bitmap_of(uint32_t slot) {
    auto [it, made] = bitmaps_.try_emplace(slot);
    if (made) {
      it->second.assign(dirty_bitmap_words(pages_of(slot)), 0);
    }
    return it->second;
  }

  struct Clear {
    uint32_t slot;
    ClearRange range;
  };
  std::vector<Clear> clears;
  int gets = 0;
  std::optional<uint32_t> fail_slot;
  std::function<void()> after_get;

 private:
  const FakeSlots& slots_;
  std::map<uint32_t, std::vector<uint64_t>> bitmaps_;
};

constexpr uint64_t kHigh = uint64_t{4} << 30;

// Two logging slots (1000 pages below, 100 above the hole) and the DirtyLog over them.
struct DirtyLogFixture : ::testing::Test {
  DirtyLogFixture() {
    slots.slots = {logging_slot(0, 0, 1000), logging_slot(1, kHigh, 100, 1000 * kPageSize)};
    auto owned = std::make_unique<FakeDirtyLog>(slots);
    kvm = owned.get();
    log.emplace(std::move(owned), slots);
  }
  // The pages one harvest reports, as IPA page numbers; fails the test on error or repeats.
  std::set<uint64_t> harvest() {
    std::set<uint64_t> pages;
    auto harvested = log->harvest([&](IpaRange run) {
      for (uint64_t p = run.start.page_number(); p < run.end().page_number(); ++p) {
        EXPECT_TRUE(pages.insert(p).second) << "page " << p << " reported twice";
      }
    });
    EXPECT_TRUE(harvested.ok()) << harvested.error().message;
    return pages;
  }
  FakeSlots slots;
  FakeDirtyLog* kvm = nullptr;
  std::optional<DirtyLog> log;
};

// Writes in both slots come back as the IPA pages of their slots; the next harvest is empty
// because the clear re-armed them; a later write is reported again.
TEST_F(DirtyLogFixture, ReportsWritesAcrossSlots) {
  kvm->write(0, 5);
  kvm->write(0, 999);
  kvm->write(1, 0);
  kvm->write(1, 99);
  const uint64_t high = kHigh / kPageSize;
  EXPECT_EQ(harvest(), (std::set<uint64_t>{5, 999, high, high + 99}));
  EXPECT_TRUE(harvest().empty());
  kvm->write(1, 42);
  EXPECT_EQ(harvest(), (std::set<uint64_t>{high + 42}));
  const DirtySourceStats stats = log->stats();
  EXPECT_EQ(stats.harvests, 3u);
  EXPECT_EQ(stats.dirty_pages, 5u);
  EXPECT_EQ(stats.ring_full_exits, 0u);
  EXPECT_EQ(log->kind(), DirtyTracking::kLog);
}

// A page written after the get but before the clear was not in the bitmap the clear names,
// so it stays dirty and shows in the next harvest: no write is lost in between.
TEST_F(DirtyLogFixture, WriteBetweenGetAndClearIsKept) {
  kvm->write(0, 10);
  kvm->after_get = [&] {
    kvm->write(0, 11);
    kvm->after_get = nullptr;
  };
  EXPECT_EQ(harvest(), (std::set<uint64_t>{10}));
  EXPECT_EQ(harvest(), (std::set<uint64_t>{11}));
}

// The clear starts at the first dirty word and ends at the last one (cut at the slot's end),
// and a clean slot gets no clear at all.
TEST_F(DirtyLogFixture, ClearsSpanOnlyTheDirtyWords) {
  kvm->write(0, 130);
  kvm->write(0, 999);
  harvest();
  ASSERT_EQ(kvm->clears.size(), 1u);
  EXPECT_EQ(kvm->clears[0].slot, 0u);
  EXPECT_EQ(kvm->clears[0].range, (ClearRange{128, 872}));
}

// Slots without KVM_MEM_LOG_DIRTY_PAGES have no bitmap in KVM: they are never asked for.
TEST_F(DirtyLogFixture, NonLoggingSlotsAreSkipped) {
  slots.slots[1].flags = 0;
  kvm->write(0, 1);
  EXPECT_EQ(harvest(), (std::set<uint64_t>{1}));
  EXPECT_EQ(kvm->gets, 1);
}

// A failed get names the slot and its range; what the slots before it reported still comes.
TEST_F(DirtyLogFixture, FailedIoctlNamesTheSlot) {
  kvm->write(0, 7);
  kvm->fail_slot = 1;
  std::vector<IpaRange> runs;
  auto harvested = log->harvest([&](IpaRange run) { runs.push_back(run); });
  ASSERT_FALSE(harvested.ok());
  EXPECT_NE(harvested.error().message.find("dirty log of memslot 1 ([0x100000000, 0x100064000))"),
            std::string::npos)
      << harvested.error().message;
  EXPECT_EQ(runs, (std::vector<IpaRange>{{Ipa(7 * kPageSize), kPageSize}}));
}

}  // namespace
}  // namespace hvmm::vmm
