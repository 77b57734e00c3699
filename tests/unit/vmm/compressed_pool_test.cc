// Tests of the compressed pool (vmm/reclaim/pool/compressed_pool.h): outcomes per kind of
// page, the pool against a std::map model under random operations in several
// configurations, the limit with and without a swap file, corrupted swap slots.
#include "hvmm/vmm/reclaim/pool/compressed_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "hvmm/vmm/reclaim/pool/pool_entry.h"
#include "pool_test_support.h"

namespace hvmm::vmm {
namespace {

using testing::mix_page;
using testing::Page;
using testing::TempDir;

// Guest page `n`'s address.
Ipa page_at(uint64_t n) {
  return Ipa(n * kPageSize);
}

// A pool for `codec` with `limit` bytes and optionally a swap file at `swap_path`.
std::unique_ptr<CompressedPool> make_pool(Codec codec, uint64_t limit = 0,
                                          const std::string& swap_path = "") {
  PoolConfig config;
  config.codec = codec;
  config.limit_bytes = limit;
  if (!swap_path.empty()) {
    auto swap = SwapFile::open(swap_path);
    EXPECT_TRUE(swap.ok()) << swap.error().message;
    if (!swap.ok()) {
      return nullptr;
    }
    config.swap = std::move(*swap);
  }
  auto pool = CompressedPool::create(std::move(config));
  EXPECT_TRUE(pool.ok()) << pool.error().message;
  return pool.ok() ? std::move(*pool) : nullptr;
}

// Zero and same-filled pages are kept as their word, counted apart, and take no pool bytes.
TEST(CompressedPool, ZeroAndSameFilledPagesAreKeptAsTheirWord) {
  auto pool = make_pool(Codec::kLz4);
  ASSERT_TRUE(pool);
  const Page zero = testing::same_filled_page(0);
  const Page same = testing::same_filled_page(0xfeedfacecafebeefull);
  EXPECT_EQ(*pool->store(page_at(1), zero), StoreOutcome::kSameFilled);
  EXPECT_EQ(*pool->store(page_at(2), same), StoreOutcome::kSameFilled);
  Page out{};
  ASSERT_TRUE(pool->load(page_at(1), out).ok());
  EXPECT_EQ(out, zero);
  ASSERT_TRUE(pool->load(page_at(2), out).ok());
  EXPECT_EQ(out, same);
  const ReclaimStoreStats stats = pool->stats();
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_EQ(stats.zero_pages, 1u);
  EXPECT_EQ(stats.same_filled_pages, 1u);
  EXPECT_EQ(stats.compressed_pages, 0u);
  EXPECT_EQ(stats.pool_bytes, 0u);
  EXPECT_EQ(stats.loads, 2u);
}

// A page that does not compress under the threshold is refused and counted, and an older
// entry of that page is dropped.
TEST(CompressedPool, IncompressiblePagesAreRefusedAndCounted) {
  for (Codec codec : {Codec::kLz4, Codec::kZstd}) {
    auto pool = make_pool(codec);
    ASSERT_TRUE(pool);
    std::mt19937_64 random(3);
    ASSERT_EQ(*pool->store(page_at(4), testing::half_random_page(random, 200)),
              StoreOutcome::kCompressed);
    EXPECT_EQ(*pool->store(page_at(4), testing::half_random_page(random, kPageSize)),
              StoreOutcome::kIncompressible);
    EXPECT_EQ(*pool->store(page_at(5), testing::half_random_page(random, 3500)),
              StoreOutcome::kIncompressible);
    EXPECT_FALSE(pool->contains(page_at(4)));
    Page out{};
    EXPECT_EQ(pool->load(page_at(4), out).error().code, ErrorCode::kNotFound);
    const ReclaimStoreStats stats = pool->stats();
    EXPECT_EQ(stats.incompressible_rejects, 2u) << codec_name(codec);
    EXPECT_EQ(stats.stores, 3u);
    EXPECT_EQ(stats.entries, 0u);
    EXPECT_EQ(stats.pool_bytes, 0u) << "the emptied span is unmapped";
  }
}

// A keep threshold outside (0, 1] is refused; a lower one refuses more pages.
TEST(CompressedPool, KeepThresholdIsCheckedAndApplied) {
  for (double bad : {0.0, -0.5, 1.5, 0.001}) {
    PoolConfig config;
    config.keep_threshold = bad;
    EXPECT_FALSE(CompressedPool::create(std::move(config)).ok()) << bad;
  }
  PoolConfig config;
  config.keep_threshold = 0.25;
  auto pool = CompressedPool::create(std::move(config));
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ((*pool)->max_entry(), 1024u);
  std::mt19937_64 random(4);
  EXPECT_EQ(*(*pool)->store(page_at(0), testing::half_random_page(random, 1500)),
            StoreOutcome::kIncompressible);
  EXPECT_EQ(*(*pool)->store(page_at(0), testing::half_random_page(random, 500)),
            StoreOutcome::kCompressed);
}

// One configuration of the model test.
struct ModelCase {
  const char* name;
  Codec codec;
  uint64_t limit;
  bool swap;
  uint64_t seed;
};
// gtest names a configuration by its name.
void PrintTo(const ModelCase& c, std::ostream* out) {
  *out << c.name;
}

// The pool against a std::map model: random stores (pattern-mix pages, same-filled pages and
// half-random pages of every compressibility), loads, erases and replacements over 384
// pages; every load compared byte for byte, every outcome and the figures checked against the
// model; at the end, emptied, the pool holds no span and no swap extent.
class PoolModel : public ::testing::TestWithParam<ModelCase> {};

TEST_P(PoolModel, MatchesAStdMapModel) {
  const ModelCase& c = GetParam();
  TempDir dir;
  auto pool = make_pool(c.codec, c.limit, c.swap ? dir.file("swap") : "");
  ASSERT_TRUE(pool);
  std::mt19937_64 random(c.seed);
  constexpr uint64_t kPages = 384;
  std::map<uint64_t, Page> model;
  uint64_t stores = 0, incompressible = 0, full = 0, loads = 0, max_swapped = 0;
  for (int op = 0; op < 6000; ++op) {
    const uint64_t n = random() % kPages;
    const unsigned what = static_cast<unsigned>(random() % 10);
    if (what < 5) {
      Page page;
      switch (random() % 5) {
        case 0:
          page = testing::same_filled_page(random() % 3 == 0 ? 0 : random());
          break;
        case 1:
        case 2:
          page = testing::half_random_page(random, random() % (kPageSize + 1));
          break;
        default:
          page = mix_page(c.seed, random() % 100000);
          break;
      }
      auto outcome = pool->store(page_at(n), page);
      ASSERT_TRUE(outcome.ok()) << outcome.error().message;
      ++stores;
      const bool same = same_fill_word(page).has_value();
      if (same) {
        ASSERT_EQ(*outcome, StoreOutcome::kSameFilled) << "op " << op;
      } else {
        ASSERT_NE(*outcome, StoreOutcome::kSameFilled) << "op " << op;
      }
      if (*outcome == StoreOutcome::kFull) {
        ASSERT_TRUE(c.limit != 0 && !c.swap) << "kFull with room to spare, op " << op;
        ++full;
      }
      if (*outcome == StoreOutcome::kIncompressible) {
        ++incompressible;
      }
      if (*outcome == StoreOutcome::kSameFilled || *outcome == StoreOutcome::kCompressed) {
        model[n] = page;
      } else {
        model.erase(n);
      }
    } else if (what < 8) {
      Page out{};
      auto loaded = pool->load(page_at(n), out);
      auto expected = model.find(n);
      if (expected == model.end()) {
        ASSERT_FALSE(loaded.ok());
        EXPECT_EQ(loaded.error().code, ErrorCode::kNotFound);
      } else {
        ASSERT_TRUE(loaded.ok()) << loaded.error().message;
        ASSERT_EQ(out, expected->second) << "page " << n << " op " << op;
        ++loads;
      }
    } else if (what < 9) {
      pool->erase(page_at(n));
      model.erase(n);
    } else {
      EXPECT_EQ(pool->contains(page_at(n)), model.count(n) != 0);
    }
    const ReclaimStoreStats stats = pool->stats();
    if (c.limit != 0) {
      ASSERT_LE(stats.pool_bytes, c.limit) << "op " << op;
    }
    max_swapped = std::max(max_swapped, stats.swapped_pages);
  }

  // The figures against the model.
  ReclaimStoreStats stats = pool->stats();
  uint64_t zero = 0, same = 0;
  for (const auto& [n, page] : model) {
    if (auto word = same_fill_word(page)) {
      ++(*word == 0 ? zero : same);
    }
  }
  EXPECT_EQ(stats.codec, codec_name(c.codec));
  EXPECT_EQ(stats.entries, model.size());
  EXPECT_EQ(stats.zero_pages, zero);
  EXPECT_EQ(stats.same_filled_pages, same);
  EXPECT_EQ(stats.compressed_pages + stats.swapped_pages, model.size() - zero - same);
  EXPECT_LE(stats.payload_bytes, stats.pool_bytes);
  EXPECT_GT(stats.payload_bytes, 0u);
  EXPECT_GT(stats.compression_ratio(), 1.33);
  EXPECT_GE(stats.fragmentation(), 0.0);
  EXPECT_EQ(stats.stores, stores);
  EXPECT_EQ(stats.incompressible_rejects, incompressible);
  EXPECT_GT(incompressible, 0u);
  EXPECT_EQ(stats.full_rejects, full);
  EXPECT_EQ(stats.loads, loads);
  EXPECT_EQ(stats.load_errors, 0u);
  EXPECT_EQ(stats.limit_bytes, c.limit);
  if (c.limit != 0 && !c.swap) {
    EXPECT_GT(full, 0u) << "the small limit was never reached";
  }
  if (c.swap) {
    EXPECT_GT(max_swapped, 0u) << "nothing went to the swap file";
    EXPECT_GT(stats.swap_writes, 0u);
    EXPECT_GT(stats.swap_reads, 0u) << "no swapped entry came back";
    EXPECT_GT(stats.swap_bytes, 0u);
  } else {
    EXPECT_EQ(stats.swapped_pages, 0u);
    EXPECT_EQ(stats.swap_bytes, 0u);
  }

  // Every entry still reads back; emptied, the pool holds nothing.
  for (const auto& [n, page] : model) {
    Page out{};
    ASSERT_TRUE(pool->load(page_at(n), out).ok()) << "page " << n;
    ASSERT_EQ(out, page) << "page " << n;
  }
  for (uint64_t n = 0; n < kPages; ++n) {
    pool->erase(page_at(n));
  }
  stats = pool->stats();
  EXPECT_EQ(stats.entries, 0u);
  EXPECT_EQ(stats.compressed_pages + stats.swapped_pages + stats.zero_pages, 0u);
  EXPECT_EQ(stats.payload_bytes, 0u);
  EXPECT_EQ(stats.pool_bytes, 0u);
  EXPECT_EQ(stats.swap_bytes, 0u);
  if (c.swap) {
    EXPECT_EQ(pool->swap_file()->allocated_bytes(), 0u) << "freed extents are punched";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Configurations, PoolModel,
    ::testing::Values(ModelCase{"lz4", Codec::kLz4, 0, false, 1},
                      ModelCase{"zstd", Codec::kZstd, 0, false, 2},
                      ModelCase{"lz4_small_limit", Codec::kLz4, 96 * 1024, false, 3},
                      ModelCase{"zstd_small_limit", Codec::kZstd, 96 * 1024, false, 4},
                      ModelCase{"lz4_small_limit_swap", Codec::kLz4, 96 * 1024, true, 5},
                      ModelCase{"zstd_small_limit_swap", Codec::kZstd, 96 * 1024, true, 6}),
    [](const ::testing::TestParamInfo<ModelCase>& param) { return std::string(param.param.name); });

// Fill a pool limited to 32 KiB with a swap file with 300 distinct text pages (so the first
// ones go to the file); the pages in store order.
std::vector<Page> fill_past_the_limit(CompressedPool& pool) {
  std::vector<Page> pages;
  for (uint64_t n = 0; pages.size() < 300; ++n) {
    if (pattern::mix_kind(pattern::page_base(9, n)) != pattern::MixKind::kText) {
      continue;
    }
    pages.push_back(mix_page(9, n));
    EXPECT_EQ(*pool.store(page_at(pages.size() - 1), pages.back()), StoreOutcome::kCompressed);
  }
  return pages;
}

// The oldest entries go to the swap file first and come back intact.
TEST(CompressedPool, OldestEntriesGoToTheSwapFileAndComeBack) {
  TempDir dir;
  auto pool = make_pool(Codec::kLz4, 32 * 1024, dir.file("swap"));
  ASSERT_TRUE(pool);
  const std::vector<Page> pages = fill_past_the_limit(*pool);
  const ReclaimStoreStats stats = pool->stats();
  ASSERT_GT(stats.swapped_pages, 0u);
  EXPECT_LE(stats.pool_bytes, 32u * 1024);
  EXPECT_EQ(stats.swapped_pages + stats.compressed_pages, pages.size());
  // Page 0 was stored first: it is in the file, and reads back from there.
  Page out{};
  ASSERT_TRUE(pool->load(page_at(0), out).ok());
  EXPECT_EQ(out, pages[0]);
  EXPECT_EQ(pool->stats().swap_reads, 1u);
  ASSERT_TRUE(pool->load(page_at(pages.size() - 1), out).ok());
  EXPECT_EQ(out, pages.back());
  EXPECT_EQ(pool->stats().swap_reads, 1u) << "the newest entry is in memory";
}

// A corrupted swap file slot fails the load with kDataLoss naming the page, and a truncated
// file (a short read) too; in-memory entries are unaffected.
TEST(CompressedPool, CorruptedSwapSlotIsDataLoss) {
  TempDir dir;
  const std::string path = dir.file("swap");
  auto pool = make_pool(Codec::kZstd, 32 * 1024, path);
  ASSERT_TRUE(pool);
  const std::vector<Page> pages = fill_past_the_limit(*pool);
  ASSERT_GT(pool->stats().swapped_pages, 1u);
  {
    // Invert the first 64 bytes of the file: the slot of page 0.
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    uint8_t bytes[64];
    ASSERT_EQ(::pread(fd, bytes, sizeof(bytes), 0), 64);
    for (uint8_t& b : bytes) {
      b = static_cast<uint8_t>(~b);
    }
    ASSERT_EQ(::pwrite(fd, bytes, sizeof(bytes), 0), 64);
    ::close(fd);
  }
  Page out{};
  auto loaded = pool->load(page_at(0), out);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code, ErrorCode::kDataLoss);
  EXPECT_NE(loaded.error().message.find("page 0x0"), std::string::npos) << loaded.error().message;
  EXPECT_EQ(pool->stats().load_errors, 1u);

  ASSERT_EQ(::truncate(path.c_str(), 0), 0);
  loaded = pool->load(page_at(1), out);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code, ErrorCode::kDataLoss);
  EXPECT_NE(loaded.error().message.find("short read"), std::string::npos) << loaded.error().message;
  ASSERT_TRUE(pool->load(page_at(pages.size() - 1), out).ok());
  EXPECT_EQ(out, pages.back());
}

// An unaligned page is refused; a load of a page never stored is kNotFound.
TEST(CompressedPool, UnalignedAndUnknownPages) {
  auto pool = make_pool(Codec::kLz4);
  ASSERT_TRUE(pool);
  const Page zero = testing::same_filled_page(0);
  EXPECT_EQ(pool->store(Ipa(0x1001), zero).error().code, ErrorCode::kInvalidArgument);
  Page out{};
  EXPECT_EQ(pool->load(page_at(7), out).error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(pool->contains(page_at(7)));
  pool->erase(page_at(7));
  EXPECT_EQ(pool->stats().entries, 0u);
}

}  // namespace
}  // namespace hvmm::vmm
