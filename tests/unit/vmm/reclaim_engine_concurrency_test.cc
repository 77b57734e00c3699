// The reclaim engine's events racing with its epochs: fault-handler-like threads refault and
// VMM threads write random pages while epochs reclaim them, and the books still balance
// (every page comes back exactly once: the count of reclaimed pages returns to zero, never
// below) and every event is counted.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "reclaim_test_support.h"

namespace hvmm::vmm {
namespace {

using testing::EngineRig;
using testing::page_run;
using testing::test_policy;

constexpr uint64_t kRam = 2 << 20;
constexpr uint64_t kPages = kRam / kPageSize;

// Two event threads against 100 epochs with cold = 1.
TEST(ReclaimEngineConcurrencyTest, EventsRacingEpochsKeepTheBooks) {
  EngineRig rig(kRam);
  rig.make_engine(test_policy(1));
  rig.touch(0, kPages);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> refaults{0};
  auto refaulter = [&](uint32_t seed) {
    std::mt19937_64 random(seed);
    while (!done.load()) {
      const uint64_t page = random() % kPages;
      rig.engine->refaulted(page_run(page), 100);
      refaults.fetch_add(1);
    }
  };
  // The writer keeps to the lower half: however fast it runs against the epochs (under a
  // sanitizer it marked nearly every page young between two epochs), the upper half goes
  // cold, so the epochs have pages to reclaim while the refaulter races them.
  auto writer = [&](uint32_t seed) {
    std::mt19937_64 random(seed);
    while (!done.load())
      rig.engine->vmm_accessed(page_run(random() % (kPages / 2)), true, 0);
  };
  std::thread a(refaulter, 1);
  std::thread b(writer, 2);
  for (int epoch = 0; epoch < 100; ++epoch) {
    rig.touch(0, kPages);  // keep everything allocated, so every page stays a candidate
    rig.epoch();
    ASSERT_LE(rig.engine->stats().reclaimed_now, kPages);
  }
  done = true;
  a.join();
  b.join();
  const ReclaimStats racing = rig.engine->stats();
  EXPECT_EQ(racing.refaults, refaults.load());
  EXPECT_GT(racing.reclaimed_pages, kPages);
  for (uint64_t page = 0; page < kPages; ++page)
    rig.engine->refaulted(page_run(page), 100);
  EXPECT_EQ(rig.engine->stats().reclaimed_now, 0u);
}

}  // namespace
}  // namespace hvmm::vmm
