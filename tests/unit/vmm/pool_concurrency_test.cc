// Concurrency test of the compressed pool: threads storing, loading and erasing their own
// pages while another reads the figures, with a small limit and a swap file, so evictions run
// under other threads' loads (run under ThreadSanitizer by tests/run-all.sh).
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "hvmm/vmm/reclaim/pool/compressed_pool.h"
#include "pool_test_support.h"

namespace hvmm::vmm {
namespace {

using testing::Page;

// Four threads on disjoint pages: every load matches what that thread last stored there.
TEST(PoolConcurrency, ThreadsSeeTheirOwnPages) {
  testing::TempDir dir;
  auto swap = SwapFile::open(dir.file("swap"));
  ASSERT_TRUE(swap.ok()) << swap.error().message;
  PoolConfig config;
  config.codec = Codec::kLz4;
  config.limit_bytes = 128 * 1024;
  config.swap = std::move(*swap);
  auto created = CompressedPool::create(std::move(config));
  ASSERT_TRUE(created.ok());
  CompressedPool& pool = **created;

  constexpr int kThreads = 4;
  constexpr uint64_t kPagesEach = 64;
  std::atomic<uint64_t> mismatches{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 random(100 + t);
      std::vector<std::optional<Page>> mine(kPagesEach);
      for (int op = 0; op < 3000; ++op) {
        const uint64_t i = random() % kPagesEach;
        const Ipa page((t * kPagesEach + i) * kPageSize);
        if (random() % 2 == 0) {
          const Page contents = testing::half_random_page(random, random() % 2500);
          auto outcome = pool.store(page, contents);
          if (!outcome.ok() || *outcome != StoreOutcome::kCompressed) {
            ++errors;
            mine[i].reset();
          } else {
            mine[i] = contents;
          }
        } else if (mine[i]) {
          Page out{};
          auto loaded = pool.load(page, out);
          if (!loaded.ok() || out != *mine[i]) {
            ++mismatches;
          }
        } else {
          pool.erase(page);
        }
      }
    });
  }
  std::thread reader([&] {
    while (!done.load()) {
      const ReclaimStoreStats stats = pool.stats();
      if (stats.pool_bytes > 128 * 1024) {
        ++errors;
      }
    }
  });
  for (std::thread& thread : threads) {
    thread.join();
  }
  done = true;
  reader.join();
  EXPECT_EQ(mismatches.load(), 0u);
  EXPECT_EQ(errors.load(), 0u);
  EXPECT_GT(pool.stats().swap_writes, 0u);
}

}  // namespace
}  // namespace hvmm::vmm
