// Stage2Tlb: hits and misses, VMID tagging, permissions, invalidations, counters, and a
// randomized differential test against a reference map.
#include "hvmm/stage2/stage2_tlb.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <random>
#include <utility>

namespace hvmm::stage2 {
namespace {

constexpr uint16_t kVmid = 5;
constexpr uint16_t kOtherVmid = 6;
constexpr Access kRw = Access::kRead | Access::kWrite;

// A fake, never dereferenced, 4 KiB-aligned host page for (vmid, page).
std::byte* fake_host(uint16_t vmid, uint64_t page) {
  return reinterpret_cast<std::byte*>((uint64_t{vmid} << 40) + ((page + 1) << kPageShift));
}

Ipa page_ipa(uint64_t page) {
  return Ipa(page << kPageShift);
}

// An empty TLB misses; after a fill, the same page hits with the page offset applied.
TEST(Stage2TlbTest, FillThenHit) {
  Stage2Tlb tlb(64);
  EXPECT_EQ(tlb.lookup(kVmid, Ipa(0x5123), Access::kRead), nullptr);
  ASSERT_TRUE(tlb.fill(kVmid, Ipa(0x5000), fake_host(kVmid, 5), kRw));
  EXPECT_EQ(tlb.lookup(kVmid, Ipa(0x5123), Access::kRead), fake_host(kVmid, 5) + 0x123);
  EXPECT_EQ(tlb.lookup(kVmid, Ipa(0x5fff), Access::kWrite), fake_host(kVmid, 5) + 0xfff);
  EXPECT_EQ(tlb.lookup(kVmid, Ipa(0x6000), Access::kRead), nullptr);
  const TlbStats stats = tlb.stats();
  EXPECT_EQ(stats.hits, 2u);
  EXPECT_EQ(stats.misses, 2u);
  EXPECT_EQ(stats.fills, 1u);
}

// Entries are tagged by VMID: another VM's lookup of the same IPA misses.
TEST(Stage2TlbTest, VmidTagging) {
  Stage2Tlb tlb(64);
  ASSERT_TRUE(tlb.fill(kVmid, page_ipa(7), fake_host(kVmid, 7), kRw));
  EXPECT_EQ(tlb.lookup(kOtherVmid, page_ipa(7), Access::kRead), nullptr);
  EXPECT_NE(tlb.lookup(kVmid, page_ipa(7), Access::kRead), nullptr);
}

// An entry filled read-only hits for reads and misses for writes.
TEST(Stage2TlbTest, PermissionsAreChecked) {
  Stage2Tlb tlb(64);
  ASSERT_TRUE(tlb.fill(kVmid, page_ipa(3), fake_host(kVmid, 3), Access::kRead));
  EXPECT_NE(tlb.lookup(kVmid, page_ipa(3), Access::kRead), nullptr);
  EXPECT_EQ(tlb.lookup(kVmid, page_ipa(3), Access::kWrite), nullptr);
  EXPECT_EQ(tlb.lookup(kVmid, page_ipa(3), kRw), nullptr);
}

// An IPA at or above 2^48 never aliases another VMID's entry, and is never cached. Without
// the check, IPA bit 52 would spill into bit 4 of the tag's VMID field, so VMID 1 would read
// VMID 17's entry; with 16 entries both also share an index (VMIDs equal modulo 16).
TEST(Stage2TlbTest, HugeIpasNeverAliasOtherVmids) {
  Stage2Tlb tlb(16);
  ASSERT_TRUE(tlb.fill(17, page_ipa(7), fake_host(17, 7), kRw));
  const Ipa alias((uint64_t{1} << 52) | (7 << kPageShift));
  EXPECT_EQ(tlb.lookup(1, alias, Access::kRead), nullptr);
  EXPECT_FALSE(tlb.fill(1, alias, fake_host(1, 7), kRw));
  tlb.invalidate_range(1, IpaRange{alias, kPageSize});
  EXPECT_NE(tlb.lookup(17, page_ipa(7), Access::kRead), nullptr);
}

// A fill whose predicate fails installs nothing and is counted as refused.
TEST(Stage2TlbTest, RefusedFillInstallsNothing) {
  Stage2Tlb tlb(64);
  EXPECT_FALSE(tlb.fill(kVmid, page_ipa(1), fake_host(kVmid, 1), kRw, [] { return false; }));
  EXPECT_EQ(tlb.lookup(kVmid, page_ipa(1), Access::kRead), nullptr);
  EXPECT_EQ(tlb.stats().fills_refused, 1u);
  EXPECT_EQ(tlb.stats().fills, 0u);
}

// Range invalidation removes exactly the pages of that VMID that overlap the range, including
// partially covered pages at both ends.
TEST(Stage2TlbTest, InvalidateRangeIsExact) {
  Stage2Tlb tlb(256);
  for (uint64_t page = 0; page < 16; ++page) {
    ASSERT_TRUE(tlb.fill(kVmid, page_ipa(page), fake_host(kVmid, page), kRw));
    ASSERT_TRUE(tlb.fill(kOtherVmid, page_ipa(page), fake_host(kOtherVmid, page), kRw));
  }
  // [0x4800, 0x8001) touches pages 4..8; the call returns what it removed.
  EXPECT_EQ(tlb.invalidate_range(kVmid, IpaRange{Ipa(0x4800), 0x8001 - 0x4800}), 5u);
  EXPECT_EQ(tlb.invalidate_range(kVmid, IpaRange{Ipa(0x4800), 0x8001 - 0x4800}), 0u);
  for (uint64_t page = 0; page < 16; ++page) {
    const bool gone = page >= 4 && page <= 8;
    EXPECT_EQ(tlb.lookup(kVmid, page_ipa(page), Access::kRead) == nullptr, gone) << page;
    EXPECT_NE(tlb.lookup(kOtherVmid, page_ipa(page), Access::kRead), nullptr) << page;
  }
  EXPECT_EQ(tlb.stats().entries_invalidated, 5u);
  EXPECT_EQ(tlb.stats().range_invalidations, 2u);
  EXPECT_EQ(tlb.stats().full_scans, 0u);
}

// Invalidating by VMID removes all of that VM's entries and nothing else; invalidate_all
// removes everything.
TEST(Stage2TlbTest, InvalidateVmidAndAll) {
  Stage2Tlb tlb(256);
  for (uint64_t page = 0; page < 8; ++page) {
    ASSERT_TRUE(tlb.fill(kVmid, page_ipa(page), fake_host(kVmid, page), kRw));
    ASSERT_TRUE(tlb.fill(kOtherVmid, page_ipa(page + 100), fake_host(kOtherVmid, page), kRw));
  }
  EXPECT_EQ(tlb.invalidate_vmid(kVmid), 8u);
  for (uint64_t page = 0; page < 8; ++page) {
    EXPECT_EQ(tlb.lookup(kVmid, page_ipa(page), Access::kRead), nullptr);
    EXPECT_NE(tlb.lookup(kOtherVmid, page_ipa(page + 100), Access::kRead), nullptr);
  }
  EXPECT_EQ(tlb.invalidate_all(), 8u);
  for (uint64_t page = 0; page < 8; ++page)
    EXPECT_EQ(tlb.lookup(kOtherVmid, page_ipa(page + 100), Access::kRead), nullptr);
  const TlbStats stats = tlb.stats();
  EXPECT_EQ(stats.vmid_invalidations, 1u);
  EXPECT_EQ(stats.full_invalidations, 1u);
  EXPECT_EQ(stats.entries_invalidated, 16u);
}

// A range far larger than the TLB is invalidated with one scan, not a loop per page: a
// 2^47-byte range finishes at once and still removes the right entries.
TEST(Stage2TlbTest, HugeRangeScansOnce) {
  Stage2Tlb tlb(64);
  ASSERT_TRUE(tlb.fill(kVmid, Ipa(uint64_t{1} << 40), fake_host(kVmid, 1), kRw));
  ASSERT_TRUE(tlb.fill(kVmid, Ipa(0x1000), fake_host(kVmid, 2), kRw));
  const auto start = std::chrono::steady_clock::now();
  tlb.invalidate_range(kVmid, IpaRange{Ipa(uint64_t{1} << 39), uint64_t{1} << 47});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::milliseconds(50));
  EXPECT_EQ(tlb.stats().full_scans, 1u);
  EXPECT_EQ(tlb.lookup(kVmid, Ipa(uint64_t{1} << 40), Access::kRead), nullptr);
  EXPECT_NE(tlb.lookup(kVmid, Ipa(0x1000), Access::kRead), nullptr);
}

// The hooks adapter invalidates (vmid, change.range) in range_updated only.
TEST(Stage2TlbTest, InvalidationHooksUseRangeUpdated) {
  Stage2Tlb tlb(64);
  TlbInvalidationHooks hooks(tlb, kVmid);
  ASSERT_TRUE(tlb.fill(kVmid, page_ipa(2), fake_host(kVmid, 2), kRw));
  const Change change{IpaRange{page_ipa(2), kPageSize}, ChangeKind::kUnmap, ChangeReason::kUnmap};
  ASSERT_TRUE(hooks.range_start(change).ok());
  EXPECT_NE(tlb.lookup(kVmid, page_ipa(2), Access::kRead), nullptr);
  hooks.range_updated(change);
  EXPECT_EQ(tlb.lookup(kVmid, page_ipa(2), Access::kRead), nullptr);
  // After set_vmid the hooks target the new VMID.
  ASSERT_TRUE(tlb.fill(kOtherVmid, page_ipa(2), fake_host(kOtherVmid, 2), kRw));
  hooks.set_vmid(kOtherVmid);
  hooks.range_updated(change);
  EXPECT_EQ(tlb.lookup(kOtherVmid, page_ipa(2), Access::kRead), nullptr);
}

// Capacity is rounded up to a power of two, with a floor of 16.
TEST(Stage2TlbTest, CapacityRounding) {
  EXPECT_EQ(Stage2Tlb(1).capacity(), 16u);
  EXPECT_EQ(Stage2Tlb(100).capacity(), 128u);
  EXPECT_EQ(Stage2Tlb().capacity(), Stage2Tlb::kDefaultEntries);
}

// Differential test: random fills, lookups and invalidations against a reference map of what
// is allowed to be cached. A hit must return exactly the reference's value; a fill followed
// by a lookup of the same key must hit (direct mapping evicts only on other fills).
TEST(Stage2TlbTest, RandomizedAgainstReference) {
  Stage2Tlb tlb(32);  // small: plenty of conflict evictions
  std::map<std::pair<uint16_t, uint64_t>, std::pair<std::byte*, Access>> reference;
  std::mt19937_64 random(42);
  const Access rights[] = {Access::kRead, kRw, kRw | Access::kExecute};
  for (int step = 0; step < 20000; ++step) {
    const auto vmid = static_cast<uint16_t>(1 + random() % 3);
    const uint64_t page = random() % 96;
    switch (random() % 6) {
      case 0:
      case 1: {  // fill (a refill may change the host page and rights)
        const Access granted = rights[random() % 3];
        std::byte* host = fake_host(vmid, page + 1000 * (random() % 2));
        ASSERT_TRUE(tlb.fill(vmid, page_ipa(page), host, granted));
        reference[{vmid, page}] = {host, granted};
        ASSERT_EQ(tlb.lookup(vmid, page_ipa(page), granted), host);
        break;
      }
      case 2: {  // range invalidation
        const uint64_t first = random() % 96;
        const uint64_t count = 1 + random() % 40;
        tlb.invalidate_range(vmid, IpaRange{page_ipa(first), count * kPageSize});
        for (uint64_t p = first; p < first + count; ++p)
          reference.erase({vmid, p});
        break;
      }
      case 3:
        if (random() % 50 == 0) {
          tlb.invalidate_vmid(vmid);
          std::erase_if(reference, [&](const auto& item) { return item.first.first == vmid; });
        }
        break;
      default: {  // lookup
        const Access needed = random() % 2 ? Access::kRead : Access::kWrite;
        std::byte* hit = tlb.lookup(vmid, Ipa((page << kPageShift) + 8), needed);
        if (hit == nullptr)
          break;
        auto expected = reference.find({vmid, page});
        ASSERT_NE(expected, reference.end()) << "stale hit for vmid " << vmid << " page " << page;
        ASSERT_EQ(hit, expected->second.first + 8);
        ASSERT_TRUE(access_allows(expected->second.second, needed));
      }
    }
  }
  EXPECT_GT(tlb.stats().hits, 1000u);
  EXPECT_GT(tlb.stats().entries_invalidated, 100u);
}

}  // namespace
}  // namespace hvmm::stage2
