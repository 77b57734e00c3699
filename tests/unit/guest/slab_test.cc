// Tests of the SLUB-like caches and kmalloc, including red-zone/poison debugging.
#include "hvmm/guest/mm/slab.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "mm_fixture.h"

namespace hvmm::guest::mm {
namespace {

using testing::FakeMachine;

std::vector<std::string> g_reports;

// Collect debug reports for assertions.
void record_report(const char* cache, const char* problem, const void*) {
  g_reports.push_back(std::string(cache) + ": " + problem);
}

// A cache with its machine; reports are recorded.
class SlabTest : public ::testing::Test {
 protected:
  SlabTest() {
    g_reports.clear();
    KmemCache::set_report_hook(record_report);
  }
  ~SlabTest() override { KmemCache::set_report_hook(nullptr); }

  FakeMachine machine_;
  std::unique_ptr<KmemCache> cache_ = std::make_unique<KmemCache>();
};

// Objects are distinct, aligned, inside slab pages, and the cache frees its slabs on destroy.
TEST_F(SlabTest, ObjectsAreDistinctAlignedAndReturned) {
  const uint64_t free_before = machine_.buddy().free_pages_total();
  ASSERT_TRUE(cache_->init(&machine_.buddy(), "test-48", 48, 16, kSlabNone));
  std::set<uintptr_t> seen;
  std::vector<void*> objects;
  for (int i = 0; i < 1000; ++i) {
    void* object = cache_->alloc(kGfpKernel);
    ASSERT_NE(object, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(object) % 16, 0u);
    EXPECT_TRUE(seen.insert(reinterpret_cast<uintptr_t>(object)).second);
    std::memset(object, i & 0xff, 48);
    objects.push_back(object);
  }
  for (size_t i = 0; i < objects.size(); ++i) {
    const auto* bytes = static_cast<const uint8_t*>(objects[i]);
    ASSERT_EQ(bytes[0], i & 0xff);
    ASSERT_EQ(bytes[47], i & 0xff);
  }
  EXPECT_GT(cache_->stats().slabs, 1u);
  for (void* object : objects) {
    cache_->free(object);
  }
  EXPECT_TRUE(cache_->destroy());
  machine_.buddy().drain_all();
  EXPECT_EQ(machine_.buddy().free_pages_total(), free_before);
}

// After a free on the same CPU the next allocation takes the fast path and reuses it.
TEST_F(SlabTest, FastPathReusesLastFreed) {
  ASSERT_TRUE(cache_->init(&machine_.buddy(), "test-64", 64, 8, kSlabNone));
  void* a = cache_->alloc(kGfpKernel);
  void* b = cache_->alloc(kGfpKernel);
  cache_->free(a);
  EXPECT_EQ(cache_->alloc(kGfpKernel), a);
  EXPECT_GE(cache_->stats().fast_allocs, 2u);
  cache_->free(a);
  cache_->free(b);
  EXPECT_TRUE(cache_->destroy());
}

// Objects freed by another CPU go to their slab's list, and come back through the partial
// list; empty slabs beyond kMinPartial return to the buddy allocator.
TEST_F(SlabTest, RemoteFreesAndPartialSlabs) {
  ASSERT_TRUE(cache_->init(&machine_.buddy(), "test-512", 512, 8, kSlabNone));
  const unsigned per_slab = (kPageSize << cache_->slab_order()) / cache_->slot_size();
  std::vector<void*> objects;
  for (unsigned i = 0; i < per_slab * 6; ++i) {
    objects.push_back(cache_->alloc(kGfpKernel));
  }
  EXPECT_EQ(cache_->stats().slabs, 6u);
  host::set_this_cpu(1);
  for (size_t i = 0; i < objects.size(); i += 2) {
    cache_->free(objects[i]);  // every slab becomes partial
  }
  EXPECT_GE(cache_->stats().partial, 5u);
  for (size_t i = 1; i < objects.size(); i += 2) {
    cache_->free(objects[i]);
  }
  const KmemCacheStats stats = cache_->stats();
  EXPECT_LE(stats.partial, KmemCache::kMinPartial + 0u);
  EXPECT_GT(stats.slabs_freed, 0u);
  host::set_this_cpu(0);
  void* again = cache_->alloc(kGfpKernel);
  ASSERT_NE(again, nullptr);
  cache_->free(again);
  EXPECT_TRUE(cache_->destroy());
}

// Debug caches catch writes past the object, writes after free, and double frees.
TEST_F(SlabTest, DebugCatchesOverflowUseAfterFreeAndDoubleFree) {
  ASSERT_TRUE(cache_->init(&machine_.buddy(), "debug-40", 40, 8, kSlabDebug));
  auto* a = static_cast<uint8_t*>(cache_->alloc(kGfpKernel));
  a[40] = 1;  // one byte past the end
  cache_->free(a);
  ASSERT_EQ(g_reports.size(), 1u);
  EXPECT_EQ(g_reports[0], "debug-40: red zone after the object overwritten");

  auto* b = static_cast<uint8_t*>(cache_->alloc(kGfpKernel));
  cache_->free(b);
  cache_->free(b);
  ASSERT_EQ(g_reports.size(), 2u);
  EXPECT_EQ(g_reports[1], "debug-40: double free");

  b[3] = 0;  // write after free
  auto* c = static_cast<uint8_t*>(cache_->alloc(kGfpKernel));
  EXPECT_EQ(c, b);
  ASSERT_EQ(g_reports.size(), 3u);
  EXPECT_EQ(g_reports[2], "debug-40: poison overwritten: written after free");
  EXPECT_EQ(cache_->stats().debug_errors, 3u);
  cache_->free(c);
}

// A clean debug cache reports nothing.
TEST_F(SlabTest, DebugQuietWhenUsedCorrectly) {
  ASSERT_TRUE(cache_->init(&machine_.buddy(), "debug-100", 100, 8, kSlabDebug));
  std::vector<void*> objects;
  for (int i = 0; i < 200; ++i) {
    objects.push_back(cache_->alloc(kGfpZero));
    std::memset(objects.back(), 0x5a, 100);
  }
  for (void* object : objects) {
    cache_->free(object);
  }
  EXPECT_TRUE(g_reports.empty());
  EXPECT_TRUE(cache_->destroy());
}

// kmalloc picks the smallest class that fits; sizes above 8 KiB use buddy blocks.
TEST_F(SlabTest, KmallocClasses) {
  auto km = std::make_unique<Kmalloc>();
  ASSERT_TRUE(km->init(&machine_.buddy(), false));
  const std::vector<std::pair<size_t, size_t>> cases = {{1, 8},       {8, 8},
                                                        {9, 16},      {33, 64},
                                                        {65, 96},     {97, 128},
                                                        {129, 192},   {193, 256},
                                                        {257, 512},   {1000, 1024},
                                                        {2048, 2048}, {4097, 8192},
                                                        {8192, 8192}, {8193, 12288 + 4096}};
  for (auto [size, usable] : cases) {
    void* p = km->alloc(size, kGfpKernel);
    ASSERT_NE(p, nullptr) << size;
    EXPECT_EQ(km->usable_size(p), usable) << "size " << size;
    if (usable <= 4096 && (usable & (usable - 1)) == 0) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % usable, 0u) << "size " << size;
    }
    km->free(p);
  }
  km->free(nullptr);
}

// Random kmalloc/kfree of random sizes keep their contents and never overlap.
TEST_F(SlabTest, KmallocRandomizedContentsSurvive) {
  auto km = std::make_unique<Kmalloc>();
  ASSERT_TRUE(km->init(&machine_.buddy(), true));
  kmalloc_set_default(km.get());
  std::mt19937_64 rng(3);
  std::map<uintptr_t, std::pair<size_t, uint8_t>> live;
  for (int step = 0; step < 20000; ++step) {
    if (live.empty() || rng() % 100 < 55) {
      const size_t size = rng() % 10 == 0 ? 1 + rng() % 20000 : 1 + rng() % 300;
      auto* p = static_cast<uint8_t*>(kmalloc(size, kGfpKernel));
      ASSERT_NE(p, nullptr);
      const auto tag = static_cast<uint8_t>(rng());
      std::memset(p, tag, size);
      const auto key = reinterpret_cast<uintptr_t>(p);
      auto next = live.lower_bound(key);
      ASSERT_TRUE(next == live.end() || next->first >= key + size) << "overlap";
      if (next != live.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->first + prev->second.first, key) << "overlap";
      }
      live[key] = {size, tag};
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      const auto* p = reinterpret_cast<const uint8_t*>(it->first);
      for (size_t i = 0; i < it->second.first; ++i) {
        ASSERT_EQ(p[i], it->second.second) << "corrupted byte " << i;
      }
      kfree(p);
      live.erase(it);
    }
  }
  for (auto& [key, value] : live) {
    kfree(reinterpret_cast<const void*>(key));
  }
  EXPECT_TRUE(g_reports.empty());
  kmalloc_set_default(nullptr);
}

}  // namespace
}  // namespace hvmm::guest::mm
