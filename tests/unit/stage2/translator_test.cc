// Translator against a real Stage2Map: hits, misses, unmap/protect coherence through the
// hooks, residency/permission/bounds errors, the byte-copy helpers, and the fill-vs-
// invalidation sequence check.
#include "hvmm/stage2/translator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <vector>

namespace hvmm::stage2 {
namespace {

constexpr uint16_t kVmid = 9;
constexpr uint64_t kBackingPages = 1024;  // 4 MiB: room for one 2 MiB block
constexpr uint64_t kBackingSize = kBackingPages * kPageSize;

// Frees what std::aligned_alloc returned.
struct FreeDeleter {
  void operator()(std::byte* memory) const { std::free(memory); }
};

// One VM: map + lock + TLB + registry + hooks + backing + translator.
class TranslatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backing_.reset(static_cast<std::byte*>(std::aligned_alloc(kLargePageSize, kBackingSize)));
    std::memset(backing_.get(), 0, kBackingSize);
    map_.emplace(std::move(Stage2Map::create(*IpaSpace::create(32), tables_)).value());
    map_->add_hooks(notifier_hooks_);
    map_->add_hooks(tlb_hooks_);
    translator_.emplace(std::move(Translator::create(*map_, lock_, tlb_, registry_, kVmid,
                                                     HostBacking{backing_.get(), kBackingSize}))
                            .value());
  }
  void TearDown() override {
    translator_.reset();
    map_->remove_hooks(tlb_hooks_);
    map_->remove_hooks(notifier_hooks_);
  }

  // Map `pages` pages at `ipa` to backing offset `output`, with `attrs`.
  void map(uint64_t ipa, uint64_t output, uint64_t pages, Attributes attrs = kRamAttributes) {
    std::unique_lock lock(lock_);
    auto mapped = map_->map(IpaRange{Ipa(ipa), pages * kPageSize}, HostOffset(output), attrs);
    ASSERT_TRUE(mapped.ok()) << mapped.error().message;
  }
  void unmap(uint64_t ipa, uint64_t pages) {
    std::unique_lock lock(lock_);
    ASSERT_TRUE(map_->unmap(IpaRange{Ipa(ipa), pages * kPageSize}).ok());
  }
  std::byte* host(uint64_t offset) { return backing_.get() + offset; }

  HeapTableAllocator tables_;
  std::optional<Stage2Map> map_;
  std::shared_mutex lock_;
  Stage2Tlb tlb_{64};
  NotifierRegistry registry_;
  NotifierHooks notifier_hooks_{registry_};
  TlbInvalidationHooks tlb_hooks_{tlb_, kVmid};
  std::unique_ptr<std::byte, FreeDeleter> backing_;
  std::optional<Translator> translator_;
};

// The translator's subscription is listed under its owner name, over the whole IPA space,
// and counts the map's invalidations.
TEST_F(TranslatorTest, SubscriptionIsListedAsTranslator) {
  map(0x40000000, 0x3000, 2);
  unmap(0x40000000, 1);
  const auto listed = registry_.list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].owner, "translator");
  EXPECT_EQ(listed[0].interval, (IpaRange{Ipa(0), uint64_t{1} << 32}));
  EXPECT_EQ(listed[0].invalidations_seen, 2u);
}

// A mapped page translates to backing + output + offset; the second access is a TLB hit.
TEST_F(TranslatorTest, TranslateMissThenHit) {
  map(0x40000000, 0x3000, 1);
  auto first = translator_->translate(Ipa(0x40000123), Access::kRead);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(*first, host(0x3123));
  EXPECT_EQ(tlb_.stats().fills, 1u);
  auto second = translator_->translate(Ipa(0x40000ff0), Access::kWrite);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, host(0x3ff0));
  EXPECT_EQ(tlb_.stats().hits, 1u);
  EXPECT_EQ(tlb_.stats().misses, 1u);
}

// Map, translate, unmap: the hooks invalidate the TLB and the next translate fails.
TEST_F(TranslatorTest, UnmapInvalidatesTheTlb) {
  map(0x10000, 0x1000, 4);
  ASSERT_TRUE(translator_->translate(Ipa(0x12000), Access::kRead).ok());
  unmap(0x12000, 1);
  auto gone = translator_->translate(Ipa(0x12000), Access::kRead);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
  EXPECT_NE(gone.error().message.find("0x12000"), std::string::npos) << gone.error().message;
  EXPECT_TRUE(translator_->translate(Ipa(0x13000), Access::kRead).ok());
}

// Without the TLB hooks the same sequence returns a stale pointer: the hook is what keeps the
// TLB coherent (this is the failure the concurrency test detects).
TEST_F(TranslatorTest, WithoutTlbHooksTheTranslationGoesStale) {
  map_->remove_hooks(tlb_hooks_);
  map(0x10000, 0x1000, 1);
  ASSERT_TRUE(translator_->translate(Ipa(0x10000), Access::kRead).ok());
  unmap(0x10000, 1);
  EXPECT_TRUE(translator_->translate(Ipa(0x10000), Access::kRead).ok()) << "expected a stale hit";
  map_->add_hooks(tlb_hooks_);
}

// protect() to read-only: reads still work, writes fail with a permission error.
TEST_F(TranslatorTest, ProtectIsSeenThroughTheTlb) {
  map(0x20000, 0x2000, 2);
  ASSERT_TRUE(translator_->translate(Ipa(0x20000), Access::kWrite).ok());
  {
    std::unique_lock lock(lock_);
    ASSERT_TRUE(
        map_->protect(IpaRange{Ipa(0x20000), kPageSize}, Permissions::kReadOnly, false).ok());
  }
  auto write = translator_->translate(Ipa(0x20010), Access::kWrite);
  ASSERT_FALSE(write.ok());
  EXPECT_EQ(write.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(write.error().message.find("r--"), std::string::npos) << write.error().message;
  EXPECT_TRUE(translator_->translate(Ipa(0x20010), Access::kRead).ok());
  EXPECT_TRUE(translator_->translate(Ipa(0x21000), Access::kWrite).ok());
}

// A ballooned page is mapped but not resident: the error says so.
TEST_F(TranslatorTest, NonResidentPageIsAnError) {
  map(0x30000, 0x4000, 1);
  {
    std::unique_lock lock(lock_);
    PageStateUpdate balloon{.set_backing = true, .backing = Backing::kBallooned};
    ASSERT_TRUE(map_->set_page_state(IpaRange{Ipa(0x30000), kPageSize}, balloon).ok());
  }
  auto ballooned = translator_->translate(Ipa(0x30000), Access::kRead);
  ASSERT_FALSE(ballooned.ok());
  EXPECT_EQ(ballooned.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(ballooned.error().message.find("ballooned"), std::string::npos);
}

// An output beyond the backing is refused instead of pointing past the mapping.
TEST_F(TranslatorTest, OutputOutsideBackingIsAnError) {
  map(0x50000, kBackingSize, 1);
  map(0x51000, kBackingSize - kPageSize, 1);
  auto outside = translator_->translate(Ipa(0x50000), Access::kRead);
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.error().code, ErrorCode::kOutOfRange);
  EXPECT_TRUE(translator_->translate(Ipa(0x51fff), Access::kRead).ok());
}

// Pages inside a 2 MiB block translate to their own 4 KiB of the block's output.
TEST_F(TranslatorTest, BlockMappingsTranslatePerPage) {
  map(0x200000, 0x200000, 512);
  ASSERT_EQ(map_->translate(Ipa(0x200000))->level, 1u);
  EXPECT_EQ(*translator_->translate(Ipa(0x3ff004), Access::kRead), host(0x3ff004));
  EXPECT_EQ(*translator_->translate(Ipa(0x200000), Access::kRead), host(0x200000));
}

// Writes to a write-tracked page succeed but are never cached as writable, so each one walks.
TEST_F(TranslatorTest, WriteTrackedPagesAreNotCachedWritable) {
  map(0x60000, 0x6000, 1);
  {
    std::unique_lock lock(lock_);
    PageStateUpdate track{.set_write_tracked = true, .write_tracked = true};
    ASSERT_TRUE(map_->set_page_state(IpaRange{Ipa(0x60000), kPageSize}, track).ok());
  }
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(translator_->translate(Ipa(0x60000), Access::kWrite).ok());
  EXPECT_EQ(tlb_.stats().misses, 3u);
  ASSERT_TRUE(translator_->translate(Ipa(0x60000), Access::kRead).ok());
  EXPECT_EQ(tlb_.stats().hits, 1u);
}

// Aging invalidates the TLB, and the next access walks and makes the page young again.
TEST_F(TranslatorTest, AgingSeesVmmAccesses) {
  map(0x70000, 0x7000, 1);
  const IpaRange page{Ipa(0x70000), kPageSize};
  ASSERT_TRUE(translator_->translate(Ipa(0x70000), Access::kRead).ok());
  {
    std::unique_lock lock(lock_);
    EXPECT_TRUE(clear_young(*map_, registry_, page));
    EXPECT_FALSE(map_->test_young(page));
  }
  ASSERT_TRUE(translator_->translate(Ipa(0x70000), Access::kRead).ok());
  std::shared_lock lock(lock_);
  EXPECT_TRUE(map_->test_young(page));
}

// Entries are per VMID: after set_vmid the translator misses and refills under the new VMID.
TEST_F(TranslatorTest, VmidChangeUsesNewEntries) {
  map(0x80000, 0x8000, 1);
  ASSERT_TRUE(translator_->translate(Ipa(0x80000), Access::kRead).ok());
  translator_->set_vmid(kVmid + 1);
  ASSERT_TRUE(translator_->translate(Ipa(0x80000), Access::kRead).ok());
  EXPECT_EQ(tlb_.stats().fills, 2u);
  EXPECT_EQ(tlb_.stats().hits, 0u);
}

// write() and read() cross page boundaries onto non-contiguous host pages.
TEST_F(TranslatorTest, CopyHelpersCrossPages) {
  map(0x90000, 0x5000, 1);
  map(0x91000, 0x1000, 1);
  map(0x92000, 0x9000, 1);
  std::vector<std::byte> data(2 * kPageSize + 100);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<std::byte>(i * 7 + 1);
  ASSERT_TRUE(translator_->write(Ipa(0x90f00), data).ok());
  EXPECT_EQ(std::memcmp(host(0x5f00), data.data(), 0x100), 0);
  EXPECT_EQ(std::memcmp(host(0x1000), data.data() + 0x100, kPageSize), 0);
  EXPECT_EQ(std::memcmp(host(0x9000), data.data() + 0x1100, data.size() - 0x1100), 0);
  std::vector<std::byte> back(data.size());
  ASSERT_TRUE(translator_->read(Ipa(0x90f00), back).ok());
  EXPECT_EQ(back, data);
}

// A copy that meets an unmapped page fails naming the range and copies nothing.
TEST_F(TranslatorTest, CopyHelpersCheckEveryPageFirst) {
  map(0xa0000, 0xa000, 1);
  map(0xa2000, 0xc000, 1);
  std::vector<std::byte> data(3 * kPageSize, std::byte{0x5a});
  auto failed = translator_->write(Ipa(0xa0000), data);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ErrorCode::kNotFound);
  EXPECT_NE(failed.error().message.find("[0xa0000, 0xa3000)"), std::string::npos)
      << failed.error().message;
  EXPECT_EQ(*host(0xa000), std::byte{0});
  EXPECT_FALSE(translator_->read(Ipa(UINT64_MAX - 10), std::span<std::byte>(data)).ok());
  EXPECT_TRUE(translator_->read(Ipa(0xa0000), std::span<std::byte>()).ok());
}

// The pattern the translator's miss path uses: a fill whose read_begin preceded an
// invalidation is refused, so a walk that raced with a change is never cached.
TEST_F(TranslatorTest, FillRacingAnInvalidationIsRefused) {
  auto sub = std::move(registry_.subscribe(IpaRange{Ipa(0), uint64_t{1} << 32}, nullptr)).value();
  const uint64_t sequence = sub.read_begin();
  // ... the walk would happen here; then an invalidation starts and finishes ...
  const Change change{IpaRange{Ipa(0xb0000), kPageSize}, ChangeKind::kUnmap, ChangeReason::kUnmap};
  ASSERT_TRUE(registry_.invalidate_range_start(change).ok());
  registry_.invalidate_range_end(change);
  EXPECT_FALSE(tlb_.fill(kVmid, Ipa(0xb0000), host(0xb000), Access::kRead,
                         [&] { return !sub.read_retry(sequence); }));
  EXPECT_EQ(tlb_.lookup(kVmid, Ipa(0xb0000), Access::kRead), nullptr);
  EXPECT_EQ(tlb_.stats().fills_refused, 1u);
}

// A walk overtaken by an unmap (between the walk and the fill) is returned but not cached:
// the next translate walks again and fails.
TEST_F(TranslatorTest, WalkOvertakenByUnmapIsNotCached) {
  map(0xc0000, 0xc000, 1);
  translator_->set_after_walk_hook_for_testing([&] { unmap(0xc0000, 1); });
  EXPECT_TRUE(translator_->translate(Ipa(0xc0000), Access::kRead).ok());
  translator_->set_after_walk_hook_for_testing(nullptr);
  EXPECT_EQ(tlb_.stats().fills_refused, 1u);
  EXPECT_FALSE(translator_->translate(Ipa(0xc0000), Access::kRead).ok());
}

// The same race without the sequence check caches the stale walk, and the unmapped page keeps
// translating: the check is what prevents it.
TEST_F(TranslatorTest, WithoutFillCheckAnOvertakenWalkIsCached) {
  map(0xc0000, 0xc000, 1);
  translator_->disable_fill_check_for_testing();
  translator_->set_after_walk_hook_for_testing([&] { unmap(0xc0000, 1); });
  EXPECT_TRUE(translator_->translate(Ipa(0xc0000), Access::kRead).ok());
  translator_->set_after_walk_hook_for_testing(nullptr);
  EXPECT_TRUE(translator_->translate(Ipa(0xc0000), Access::kRead).ok()) << "expected a stale hit";
}

// create() rejects an unaligned backing.
TEST_F(TranslatorTest, CreateRejectsUnalignedBacking) {
  auto bad = Translator::create(*map_, lock_, tlb_, registry_, kVmid,
                                HostBacking{backing_.get() + 8, kBackingSize - kPageSize});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace hvmm::stage2
