// Stage2Map: the raw table structure after each kind of operation.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <string>
#include <vector>

#include "hvmm/stage2/stage2_map.h"

namespace hvmm::stage2 {
namespace {

constexpr uint64_t kPage = kPageSize;
constexpr uint64_t k2M = kLargePageSize;
constexpr uint64_t k1G = kHugePageSize;
// A 40-bit space: start at ARM level 1 with two concatenated root tables (hvmm level 2).
constexpr unsigned kIpaBits = 40;

// The table a table descriptor points at.
const uint64_t* child(uint64_t table_descriptor) {
  EXPECT_TRUE(Descriptor(table_descriptor).is_table(1)) << std::hex << table_descriptor;
  return reinterpret_cast<const uint64_t*>(Descriptor(table_descriptor).address());
}

// Number of non-zero entries in a table of `n` entries.
int populated(const uint64_t* table, unsigned n = kEntriesPerTable) {
  int count = 0;
  for (unsigned i = 0; i < n; ++i)
    count += table[i] != 0;
  return count;
}

class Stage2MapTest : public ::testing::Test {
 protected:
  Stage2Map make_map(MapOptions options = {}) {
    auto map = Stage2Map::create(IpaSpace::create(kIpaBits).value(), tables_, options);
    EXPECT_TRUE(map.ok());
    return std::move(map).value();
  }
  HeapTableAllocator tables_;
};

// One 4 KiB page: a level-1 and a level-0 table appear; only the page's leaf is set.
TEST_F(Stage2MapTest, MapOnePageBuildsTablesDownToTheLeaf) {
  Stage2Map map = make_map();
  ASSERT_TRUE(map.map({Ipa(0x4000'3000), kPage}, HostOffset(0x7000), kRamAttributes).ok());

  EXPECT_EQ(populated(map.root(), map.space().root_entries()), 1);
  const uint64_t* l1 = child(map.root()[1]);
  EXPECT_EQ(populated(l1), 1);
  const uint64_t* l0 = child(l1[0]);
  EXPECT_EQ(populated(l0), 1);
  EXPECT_EQ(l0[3], Descriptor::leaf(0, HostOffset(0x7000), kRamAttributes, {}, true).raw());
  EXPECT_EQ(map.table_count(), 2u + 2u);
  EXPECT_EQ(tables_.tables_in_use(), 2u);
}

// An aligned 2 MiB range becomes one level-1 block; no page table is allocated.
TEST_F(Stage2MapTest, AlignedTwoMegabytesIsOneBlock) {
  Stage2Map map = make_map();
  ASSERT_TRUE(map.map({Ipa(0x60'0000), k2M}, HostOffset(0x20'0000), kRamAttributes).ok());

  const uint64_t* l1 = child(map.root()[0]);
  EXPECT_EQ(populated(l1), 1);
  EXPECT_EQ(l1[3], Descriptor::leaf(1, HostOffset(0x20'0000), kRamAttributes, {}, true).raw());
  EXPECT_FALSE(Descriptor(l1[3]).is_table(1));
  EXPECT_EQ(tables_.tables_in_use(), 1u);
}

// An aligned 1 GiB range becomes one block in the root; no table is allocated at all.
TEST_F(Stage2MapTest, AlignedGigabyteIsOneRootBlock) {
  Stage2Map map = make_map();
  ASSERT_TRUE(map.map({Ipa(3 * k1G), k1G}, HostOffset(k1G), kRamAttributes).ok());

  EXPECT_EQ(populated(map.root(), map.space().root_entries()), 1);
  EXPECT_EQ(map.root()[3], Descriptor::leaf(2, HostOffset(k1G), kRamAttributes, {}, true).raw());
  EXPECT_EQ(tables_.tables_in_use(), 0u);
}

// An output that is only page aligned forces pages even for an aligned 2 MiB IPA range.
TEST_F(Stage2MapTest, MisalignedOutputFallsBackToPages) {
  Stage2Map map = make_map();
  ASSERT_TRUE(map.map({Ipa(0), k2M}, HostOffset(0x1000), kRamAttributes).ok());

  const uint64_t* l0 = child(child(map.root()[0])[0]);
  EXPECT_EQ(populated(l0), 512);
  EXPECT_EQ(Descriptor(l0[511]).output(), HostOffset(0x1000 + 511 * kPage));
}

// max_block_level = 0 maps only pages.
TEST_F(Stage2MapTest, MaxBlockLevelZeroMapsPagesOnly) {
  Stage2Map map = make_map(MapOptions{.max_block_level = 0});
  ASSERT_TRUE(map.map({Ipa(0), 2 * k2M}, HostOffset(0), kRamAttributes).ok());
  EXPECT_EQ(tables_.tables_in_use(), 3u);  // one level-1 table, two page tables
}

// Protecting half of a block splits it into pages; restoring the rest coalesces it back.
TEST_F(Stage2MapTest, PartialProtectSplitsAndRestoreCoalesces) {
  Stage2Map map = make_map();
  ASSERT_TRUE(map.map({Ipa(0), k2M}, HostOffset(0), kRamAttributes).ok());
  ASSERT_TRUE(map.protect({Ipa(0), k2M / 2}, Permissions::kReadOnly, false).ok());

  const uint64_t* l1 = child(map.root()[0]);
  const uint64_t* l0 = child(l1[0]);
  EXPECT_EQ(Descriptor(l0[0]).attributes().permissions, Permissions::kReadOnly);
  EXPECT_FALSE(Descriptor(l0[255]).attributes().executable);
  EXPECT_EQ(Descriptor(l0[256]).attributes().permissions, Permissions::kReadWrite);
  EXPECT_EQ(Descriptor(l0[511]).output(), HostOffset(511 * kPage));

  ASSERT_TRUE(map.protect({Ipa(0), k2M / 2}, Permissions::kReadWrite, true).ok());
  EXPECT_EQ(l1[0], Descriptor::leaf(1, HostOffset(0), kRamAttributes, {}, true).raw());
  EXPECT_EQ(tables_.tables_in_use(), 1u);
}

// Unmapping part of a gigabyte block splits it twice; unmapping the rest frees every table.
TEST_F(Stage2MapTest, UnmapSplitsBlocksAndFreesEmptyTables) {
  Stage2Map map = make_map();
  ASSERT_TRUE(map.map({Ipa(0), k1G}, HostOffset(0), kRamAttributes).ok());
  ASSERT_TRUE(map.unmap({Ipa(k2M + kPage), kPage}).ok());

  const uint64_t* l1 = child(map.root()[0]);
  EXPECT_EQ(populated(l1), 512);
  EXPECT_EQ(l1[0], Descriptor::leaf(1, HostOffset(0), kRamAttributes, {}, true).raw());
  const uint64_t* l0 = child(l1[1]);
  EXPECT_EQ(populated(l0), 511);
  EXPECT_EQ(l0[1], 0u);
  EXPECT_EQ(Descriptor(l0[2]).output(), HostOffset(k2M + 2 * kPage));
  EXPECT_FALSE(map.translate(Ipa(k2M + kPage)).has_value());

  ASSERT_TRUE(map.unmap({Ipa(0), k1G}).ok());
  EXPECT_EQ(map.root()[0], 0u);
  EXPECT_EQ(tables_.tables_in_use(), 0u);
  EXPECT_EQ(map.table_count(), map.space().root_tables());
}

// Remapping back the hole of a split block coalesces all the way back to the 1 GiB block.
TEST_F(Stage2MapTest, RefillingAHoleCoalescesToTheOriginalBlock) {
  Stage2Map map = make_map();
  ASSERT_TRUE(map.map({Ipa(0), k1G}, HostOffset(0), kRamAttributes).ok());
  ASSERT_TRUE(map.unmap({Ipa(5 * kPage), kPage}).ok());
  ASSERT_TRUE(map.map({Ipa(5 * kPage), kPage}, HostOffset(5 * kPage), kRamAttributes).ok());
  EXPECT_EQ(map.root()[0], Descriptor::leaf(2, HostOffset(0), kRamAttributes, {}, true).raw());
  EXPECT_EQ(tables_.tables_in_use(), 0u);
}

// Destroying the map gives every table back, pinned pages and all levels included.
TEST_F(Stage2MapTest, DestroyingTheMapFreesEveryTable) {
  {
    Stage2Map map = make_map();
    ASSERT_TRUE(map.map({Ipa(k1G - kPage), 2 * kPage}, HostOffset(0), kRamAttributes).ok());
    ASSERT_TRUE(map.map({Ipa(5 * k1G), 3 * k2M}, HostOffset(0), kRamAttributes).ok());
    ASSERT_TRUE(map.set_page_state({Ipa(k1G), kPage}, {.set_pinned = true, .pinned = true}).ok());
    // Either side of 1 GiB a level-1 and a page table; three 2 MiB blocks in a level-1 table.
    EXPECT_EQ(tables_.tables_in_use(), 5u);
  }
  EXPECT_EQ(tables_.tables_in_use(), 0u);
}

// Ballooning a page leaves an invalid descriptor that keeps the output address and state.
TEST_F(Stage2MapTest, BalloonedPageIsAnnotatedInvalidLeaf) {
  Stage2Map map = make_map();
  ASSERT_TRUE(map.map({Ipa(0), k2M}, HostOffset(0), kRamAttributes).ok());
  PageStateUpdate balloon{.set_backing = true, .backing = Backing::kBallooned};
  ASSERT_TRUE(map.set_page_state({Ipa(kPage), kPage}, balloon).ok());

  const uint64_t* l0 = child(child(map.root()[0])[0]);
  const Descriptor d(l0[1]);
  EXPECT_FALSE(d.valid());
  EXPECT_EQ(d.output(), HostOffset(kPage));
  EXPECT_EQ(d.state().backing, Backing::kBallooned);
  EXPECT_TRUE(l0[0] & bits::kValid);
  auto t = map.translate(Ipa(kPage + 0x10));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->state.backing, Backing::kBallooned);
  EXPECT_EQ(t->output, HostOffset(kPage + 0x10));

  PageStateUpdate deflate{.set_backing = true, .backing = Backing::kResident};
  ASSERT_TRUE(map.set_page_state({Ipa(kPage), kPage}, deflate).ok());
  EXPECT_EQ(child(map.root()[0])[0],
            Descriptor::leaf(1, HostOffset(0), kRamAttributes, {}, true).raw());
}

// Translation adds the offset inside the leaf and reports the leaf's level.
TEST_F(Stage2MapTest, TranslateInsideBlocksAndPages) {
  Stage2Map map = make_map();
  ASSERT_TRUE(map.map({Ipa(k1G), k1G}, HostOffset(4 * k1G), kRamAttributes).ok());
  ASSERT_TRUE(map.map({Ipa(0x1000), kPage}, HostOffset(0x9000), kRamAttributes).ok());
  auto block = map.translate(Ipa(k1G + 0x12345));
  ASSERT_TRUE(block.has_value());
  EXPECT_EQ(block->output, HostOffset(4 * k1G + 0x12345));
  EXPECT_EQ(block->level, 2u);
  auto page = map.translate(Ipa(0x1fff));
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->output, HostOffset(0x9fff));
  EXPECT_EQ(page->level, 0u);
  EXPECT_FALSE(map.translate(Ipa(0x2000)).has_value());
  EXPECT_FALSE(map.translate(Ipa(uint64_t{1} << kIpaBits)).has_value());
}

// mkold clears AF and reports youth once; mark_young sets it again; blocks age whole.
TEST_F(Stage2MapTest, AgingClearsAndSetsAccessFlag) {
  Stage2Map map = make_map();
  ASSERT_TRUE(map.map({Ipa(0), k2M}, HostOffset(0), kRamAttributes).ok());
  EXPECT_TRUE(map.test_young({Ipa(0), kPage}));
  EXPECT_TRUE(map.mkold({Ipa(0), kPage}));
  EXPECT_FALSE(map.test_young({Ipa(k2M - kPage), kPage}));  // the whole block aged
  EXPECT_FALSE(map.mkold({Ipa(0), k2M}));
  EXPECT_EQ(tables_.tables_in_use(), 1u);  // no split
  EXPECT_TRUE(map.mark_young(Ipa(0x1234)));
  EXPECT_TRUE(map.test_young({Ipa(0), k2M}));
  EXPECT_FALSE(map.mark_young(Ipa(k1G)));
}

// Records the order of hook calls and what translate() said at each point.
class RecordingHooks : public ChangeHooks {
 public:
  explicit RecordingHooks(const Stage2Map& map, Ipa probe) : map_(map), probe_(probe) {}
  Result<void> range_start(const Change& c) override {
    record("start", c);
    return Ok();
  }
  void range_updated(const Change& c) override { record("updated", c); }
  void range_end(const Change& c) override { record("end", c); }
  std::vector<std::string> events;

 private:
  void record(const char* what, const Change& c) {
    events.push_back(fmt::format("{} {} {} {}", what, change_reason_name(c.reason), c.range,
                                 map_.translate(probe_).has_value() ? "mapped" : "unmapped"));
  }
  const Stage2Map& map_;
  Ipa probe_;
};

// Break-before-make: start sees the old entry, updated and end see the new one.
TEST_F(Stage2MapTest, HooksRunStartUpdateEndWithReason) {
  Stage2Map map = make_map();
  RecordingHooks hooks(map, Ipa(0x2000));
  map.add_hooks(hooks);
  ASSERT_TRUE(map.map({Ipa(0x2000), kPage}, HostOffset(0), kRamAttributes).ok());
  ASSERT_TRUE(map.unmap({Ipa(0x2000), kPage}, ChangeReason::kBalloon).ok());
  EXPECT_FALSE(map.unmap({Ipa(0x2001), kPage}).ok());  // rejected: no hook call
  map.remove_hooks(hooks);
  const std::vector<std::string> expected = {
      "start map [0x2000, 0x3000) unmapped",       "updated map [0x2000, 0x3000) mapped",
      "end map [0x2000, 0x3000) mapped",           "start balloon [0x2000, 0x3000) mapped",
      "updated balloon [0x2000, 0x3000) unmapped", "end balloon [0x2000, 0x3000) unmapped",
  };
  EXPECT_EQ(hooks.events, expected);
}

// Refuses every range_start (as a subscriber that would block refuses a non-blockable
// change) and counts the calls it gets.
class RefusingHooks : public ChangeHooks {
 public:
  Result<void> range_start(const Change& c) override {
    ++starts;
    return make_error(ErrorCode::kUnavailable, "busy with {}", c.range);
  }
  void range_updated(const Change&) override { ++updates; }
  void range_end(const Change&) override { ++ends; }
  int starts = 0;
  int updates = 0;
  int ends = 0;
};

// A hook refusing range_start aborts the change: descriptors and tables stay as they were
// (the table a block split would need goes back), the hooks that started get range_end
// without range_updated, later hooks are never called, and the error says so and names the
// range.
TEST_F(Stage2MapTest, RefusedStartCommitsNothing) {
  Stage2Map map = make_map();
  ASSERT_TRUE(map.map({Ipa(0), k2M}, HostOffset(0), kRamAttributes).ok());
  const std::string before = map.dump();
  const size_t tables_before = tables_.tables_in_use();
  RecordingHooks first(map, Ipa(0x1000));
  RefusingHooks refusing;
  RecordingHooks last(map, Ipa(0x1000));
  map.add_hooks(first);
  map.add_hooks(refusing);
  map.add_hooks(last);
  PageStateUpdate balloon{.set_backing = true, .backing = Backing::kBallooned};
  auto refused = map.set_page_state({Ipa(0x1000), kPage}, balloon, ChangeReason::kBalloon,
                                    /*blockable=*/false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(refused.error().message.find("[0x1000, 0x2000)"), std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("refused"), std::string::npos);
  EXPECT_FALSE(map.unmap({Ipa(0), k2M}).ok());
  EXPECT_TRUE(map.mkold({Ipa(0), kPage}));  // refused aging: still young
  EXPECT_TRUE(map.test_young({Ipa(0), kPage}));
  map.remove_hooks(first);
  map.remove_hooks(refusing);
  map.remove_hooks(last);
  EXPECT_EQ(map.dump(), before);
  EXPECT_EQ(tables_.tables_in_use(), tables_before);
  EXPECT_EQ(map.translate(Ipa(0x1000))->state.backing, Backing::kResident);
  EXPECT_EQ(refusing.starts, 3);
  EXPECT_EQ(refusing.updates, 0);
  EXPECT_EQ(refusing.ends, 0);
  const std::vector<std::string> expected = {
      "start balloon [0x1000, 0x2000) mapped", "end balloon [0x1000, 0x2000) mapped",
      "start unmap [0x0, 0x200000) mapped",    "end unmap [0x0, 0x200000) mapped",
      "start aging [0x0, 0x1000) mapped",      "end aging [0x0, 0x1000) mapped",
  };
  EXPECT_EQ(first.events, expected);
  EXPECT_TRUE(last.events.empty());
}

// Records whether the probed range was young when each hook ran.
class AgingHooks : public ChangeHooks {
 public:
  explicit AgingHooks(const Stage2Map& map) : map_(map) {}
  Result<void> range_start(const Change& c) override {
    record("start", c);
    return Ok();
  }
  void range_updated(const Change& c) override { record("updated", c); }
  void range_end(const Change& c) override { record("end", c); }
  std::vector<std::string> events;

 private:
  void record(const char* what, const Change& c) {
    events.push_back(fmt::format("{} {} {}", what, change_reason_name(c.reason),
                                 map_.test_young(c.range) ? "young" : "old"));
  }
  const Stage2Map& map_;
};

// Aging is break-before-make too; a range with nothing young causes no hook call.
TEST_F(Stage2MapTest, MkoldRunsHooksAroundClearingOnlyWhenYoung) {
  Stage2Map map = make_map();
  ASSERT_TRUE(map.map({Ipa(0), 4 * kPage}, HostOffset(0), kRamAttributes).ok());
  AgingHooks hooks(map);
  map.add_hooks(hooks);
  EXPECT_TRUE(map.mkold({Ipa(0), 4 * kPage}));
  EXPECT_FALSE(map.mkold({Ipa(0), 4 * kPage}));
  map.remove_hooks(hooks);
  const std::vector<std::string> expected = {"start aging young", "updated aging old",
                                             "end aging old"};
  EXPECT_EQ(hooks.events, expected);
}

// Hands out tables from a mapping at a fixed address, so that table descriptors have values
// known in advance: the n-th table ever allocated (and not freed) is at kBase + n * 4 KiB.
class FixedAddressTables final : public TableAllocator {
 public:
  static constexpr uint64_t kBase = 0x0000'7e00'0000'0000;
  static constexpr size_t kTables = 16;

  FixedAddressTables() {
    void* memory = mmap(reinterpret_cast<void*>(kBase), kTables * kPage, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (memory == reinterpret_cast<void*>(kBase)) {
      base_ = static_cast<uint64_t*>(memory);
    } else if (memory != MAP_FAILED) {
      munmap(memory, kTables * kPage);  // a kernel without MAP_FIXED_NOREPLACE placed it elsewhere
    }
  }
  ~FixedAddressTables() override {
    if (base_ != nullptr)
      munmap(base_, kTables * kPage);
  }
  FixedAddressTables(const FixedAddressTables&) = delete;
  FixedAddressTables& operator=(const FixedAddressTables&) = delete;

  bool mapped() const { return base_ != nullptr; }
  uint64_t* allocate_table() override {
    if (next_ == kTables)
      return nullptr;
    uint64_t* table = base_ + next_++ * kEntriesPerTable;
    std::memset(table, 0, kPage);
    return table;
  }
  void free_table(uint64_t*) override {}  // the test only grows the map

 private:
  uint64_t* base_ = nullptr;
  size_t next_ = 0;
};

// What map operations write into the tables, against descriptors assembled by hand from the
// ARM ARM layout (D8.3; the fields of each value are derived in descriptor_test.cc):
//   RAM page (RWX, inner shareable, write-back, AF) at 0x8_1234_5000   0x0000_0008_1234_57ff
//   Device-nGnRE page (RW, XN, outer shareable, AF) at 0x9000_0000      0x0040_0000_9000_06c7
//   2 MiB RAM block at 0x4020_0000                                      0x0000_0000_4020_07fd
//   1 GiB RAM block at 0x1_0000_0000 with AF clear (0x7fd - 0x400)      0x0000_0001_0000_03fd
//   table at 0x7e00_0000_0000 (+ 0x1000): valid + table bits 0b11      0x0000_7e00_0000_0003
//   the RAM page ballooned: valid clear, software [56:55] = 0b01        0x0080_0008_1234_57fe
TEST(Stage2MapRawTest, TablesHoldHandAssembledDescriptors) {
  FixedAddressTables tables;
  if (!tables.mapped())
    GTEST_SKIP() << "cannot map the test's tables at " << std::hex << FixedAddressTables::kBase;
  auto created = Stage2Map::create(IpaSpace::create(kIpaBits).value(), tables);
  ASSERT_TRUE(created.ok());
  Stage2Map map = std::move(created).value();
  const Attributes device{Permissions::kReadWrite, MemoryType::kDeviceNGnRE,
                          Shareability::kOuterShareable, false};

  // One table (ARM level 2) under root entry 1, holding the 2 MiB block in its entry 1.
  ASSERT_TRUE(map.map({Ipa(0x4020'0000), k2M}, HostOffset(0x4020'0000), kRamAttributes).ok());
  EXPECT_EQ(map.root()[1], 0x0000'7e00'0000'0003u);
  const auto* l1 = reinterpret_cast<const uint64_t*>(FixedAddressTables::kBase);
  EXPECT_EQ(l1[1], 0x0000'0000'4020'07fdu);

  // A page table in entry 0 of that table; pages 3 (RAM) and 5 (device) in it.
  ASSERT_TRUE(map.map({Ipa(0x4000'3000), kPage}, HostOffset(0x8'1234'5000), kRamAttributes).ok());
  ASSERT_TRUE(map.map({Ipa(0x4000'5000), kPage}, HostOffset(0x9000'0000), device).ok());
  EXPECT_EQ(l1[0], 0x0000'7e00'0000'1003u);
  const auto* l0 = reinterpret_cast<const uint64_t*>(FixedAddressTables::kBase + kPage);
  EXPECT_EQ(l0[3], 0x0000'0008'1234'57ffu);
  EXPECT_EQ(l0[5], 0x0040'0000'9000'06c7u);
  EXPECT_EQ(populated(l0), 2);

  // Ballooning the RAM page keeps every field but the valid bit and records the state.
  ASSERT_TRUE(map.set_page_state({Ipa(0x4000'3000), kPage},
                                 {.set_backing = true, .backing = Backing::kBallooned})
                  .ok());
  EXPECT_EQ(l0[3], 0x0080'0008'1234'57feu);

  // An old 1 GiB block straight in root entry 2 (ARM level 1), no table needed.
  ASSERT_TRUE(
      map.map({Ipa(2 * k1G), k1G}, HostOffset(4 * k1G), kRamAttributes, ChangeReason::kMap, false)
          .ok());
  EXPECT_EQ(map.root()[2], 0x0000'0001'0000'03fdu);
}

// The dump coalesces contiguous leaves with equal attributes into one line each.
TEST_F(Stage2MapTest, DumpCoalescesRuns) {
  Stage2Map map = make_map();
  ASSERT_TRUE(map.map({Ipa(0), k2M + 2 * kPage}, HostOffset(0), kRamAttributes).ok());
  ASSERT_TRUE(map.protect({Ipa(k2M + kPage), kPage}, Permissions::kReadOnly, false).ok());
  ASSERT_TRUE(map.set_page_state({Ipa(0), kPage}, {.set_pinned = true, .pinned = true}).ok());
  EXPECT_EQ(map.dump(),
            "stage-2 map: 40-bit IPA, start level 1 (2 root tables), 5 tables\n"
            "  [0x0, 0x1000) -> 0x0 rwx normal-wb inner resident young pinned 4K\n"
            "  [0x1000, 0x201000) -> 0x1000 rwx normal-wb inner resident young 4K\n"
            "  [0x201000, 0x202000) -> 0x201000 r-- normal-wb inner resident young 4K\n");
}

}  // namespace
}  // namespace hvmm::stage2
