// The reclaim engine against a simple model under random sequences of writes (harvested and
// VMM), refaults and reclaim outcomes, fixed seeds: after every epoch each page's idle age
// and the working-set bins equal the model's, every page handed over was a candidate in the
// model, and the rate-limited selection took the coldest candidates.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "reclaim_test_support.h"

namespace hvmm::vmm {
namespace {

using testing::EngineRig;
using testing::page_ipa;
using testing::page_run;
using testing::test_policy;

constexpr uint64_t kRam = 2 << 20;  // 512 pages
constexpr uint64_t kPages = kRam / kPageSize;
constexpr uint64_t kKnownPages = 400;  // the others are never touched: never counted
constexpr uint64_t kNever = ~uint64_t{0};
constexpr uint32_t kCold = 5;
constexpr uint32_t kDistance = 6;
constexpr uint32_t kActive = 12;
constexpr uint64_t kRatePages = 24;

// What the model keeps per page: the epoch of the last write or refault, and why it waits.
struct ModelPage {
  uint64_t last_touch = kNever;
  bool reclaimed = false;
  uint64_t evicted = 0;
  bool active = false;
  bool incompressible = false;
  bool skipped = false;
};

struct Model {
  std::vector<ModelPage> pages = std::vector<ModelPage>(kPages);
  uint64_t epoch = 0;

  uint64_t idle(uint64_t page) const { return epoch - pages[page].last_touch; }
  void write(uint64_t page) {
    ModelPage& p = pages[page];
    p.last_touch = epoch;
    p.incompressible = p.skipped = false;
  }
  void refault(uint64_t page) {
    ModelPage& p = pages[page];
    p.active = epoch - p.evicted <= kDistance;
    p.reclaimed = false;
    write(page);
  }
  // The engine's candidate rule, restated.
  bool candidate(uint64_t page) const {
    const ModelPage& p = pages[page];
    if (p.last_touch == kNever || p.reclaimed || p.incompressible)
      return false;
    if (p.skipped && epoch % kCold != 0)
      return false;
    return idle(page) >= (p.active ? kActive : kCold);
  }
  // The working-set bins at 1 s epochs: 0 | 1-9 | 10-59 | 60-119 | older.
  std::array<uint64_t, WorkingSetEstimate::kBins> bins() const {
    std::array<uint64_t, WorkingSetEstimate::kBins> bins{};
    for (uint64_t page = 0; page < kPages; ++page) {
      if (pages[page].last_touch == kNever)
        continue;
      const uint64_t idle_s = idle(page);
      const size_t bin = idle_s < 1 ? 0 : idle_s < 10 ? 1 : idle_s < 60 ? 2 : idle_s < 120 ? 3 : 4;
      bins[bin] += 1;
    }
    return bins;
  }
};

// Run 300 epochs of random events under `seed`, checking the engine against the model.
void run_model(uint32_t seed) {
  EngineRig rig(kRam);
  ReclaimPolicy policy = test_policy(kCold);
  policy.refault_distance = kDistance;
  policy.active_epochs = kActive;
  policy.max_rate = kRatePages * kPageSize;
  rig.make_engine(policy);
  std::mt19937_64 random(seed);
  auto chance = [&](double p) { return std::uniform_real_distribution<>(0, 1)(random) < p; };
  Model model;
  rig.touch(0, kKnownPages);
  for (uint64_t page = 0; page < kKnownPages; ++page)
    model.write(page);

  // The fake window decides at random and keeps the model in step; it notes the idle age
  // each page had when it was handed over.
  std::vector<uint64_t> handed_idle;
  rig.reclaimer->decide = [&](uint64_t page) {
    EXPECT_TRUE(model.candidate(page))
        << "seed " << seed << " epoch " << model.epoch << ": page " << page << " was no candidate";
    handed_idle.push_back(model.idle(page));
    const double roll = std::uniform_real_distribution<>(0, 1)(random);
    ModelPage& p = model.pages[page];
    if (roll < 0.10) {
      model.write(page);
      return ReclaimOutcome::kAborted;
    }
    if (roll < 0.15) {
      p.incompressible = true;
      return ReclaimOutcome::kIncompressible;
    }
    if (roll < 0.20) {
      p.skipped = true;
      return ReclaimOutcome::kSkipped;
    }
    p.reclaimed = true;
    p.active = false;
    p.evicted = model.epoch;
    return ReclaimOutcome::kReclaimed;
  };

  std::array<bool, WorkingSetEstimate::kBins> bins_seen{};
  for (uint64_t epoch = 0; epoch < 300; ++epoch) {
    model.epoch = epoch;
    // Between epochs: refaults of reclaimed pages, VMM writes, and guest writes the next
    // harvest reports (the guest writes in bursts, so some pages stay hot for a while).
    const bool busy = (epoch / 40) % 2 == 0;
    for (uint64_t page = 0; page < kKnownPages; ++page) {
      ModelPage& p = model.pages[page];
      if (p.reclaimed) {
        if (chance(0.04)) {
          rig.refault(page);
          model.refault(page);
        }
      } else if (chance(busy && page < 64 ? 0.5 : 0.01)) {
        if (chance(0.5)) {
          rig.dirty.next.push_back(page_run(page));
        } else {
          rig.engine->vmm_accessed(page_run(page), true, 0);
        }
        model.write(page);
      }
    }
    const std::array<uint64_t, WorkingSetEstimate::kBins> bins = model.bins();
    std::vector<uint64_t> candidates;
    for (uint64_t page = 0; page < kPages; ++page) {
      if (model.candidate(page))
        candidates.push_back(page);
    }
    const EpochReport report = rig.epoch();
    ASSERT_EQ(report.working_set.pages, bins) << "seed " << seed << " epoch " << epoch;
    for (size_t bin = 0; bin < bins.size(); ++bin)
      bins_seen[bin] = bins_seen[bin] || bins[bin] != 0;
    ASSERT_EQ(report.eligible, candidates.size()) << "seed " << seed << " epoch " << epoch;
    const std::vector<uint64_t> handed = rig.reclaimer->take_pages();
    ASSERT_EQ(handed.size(), std::min<uint64_t>(kRatePages, candidates.size()))
        << "seed " << seed << " epoch " << epoch;
    // Coldest first: no candidate left behind was colder than a page handed over.
    uint64_t coldest_left = 0;
    uint64_t warmest_handed = kNever;
    for (uint64_t page : candidates) {
      const uint64_t idle = epoch - model.pages[page].last_touch;
      if (std::find(handed.begin(), handed.end(), page) == handed.end())
        coldest_left = std::max(coldest_left, idle);
    }
    for (uint64_t idle : handed_idle)
      warmest_handed = std::min(warmest_handed, idle);
    handed_idle.clear();
    if (!handed.empty()) {
      ASSERT_LE(coldest_left, warmest_handed) << "seed " << seed << " epoch " << epoch;
    }
    model.epoch = epoch + 1;
    uint64_t reclaimed = 0;
    for (uint64_t page = 0; page < kPages; ++page) {
      const std::optional<uint64_t> idle = rig.engine->idle_epochs(page_ipa(page));
      if (model.pages[page].last_touch == kNever) {
        ASSERT_EQ(idle, std::nullopt) << "page " << page;
        continue;
      }
      ASSERT_EQ(idle, model.idle(page))
          << "seed " << seed << " after epoch " << epoch << ": page " << page;
      reclaimed += model.pages[page].reclaimed ? 1 : 0;
    }
    ASSERT_EQ(rig.engine->stats().reclaimed_now, reclaimed);
  }
  EXPECT_EQ(bins_seen, (std::array<bool, WorkingSetEstimate::kBins>{true, true, true, true, true}))
      << "every bin was populated at some epoch";
  EXPECT_GT(rig.engine->stats().reclaimed_pages, 1000u) << "the sequence exercised reclaim";
  EXPECT_GT(rig.engine->stats().refaults_activated, 10u) << "and the refault distance";
}

// Three fixed seeds.
TEST(ReclaimEngineModelTest, AgesAndWorkingSetMatchTheModel) {
  for (uint32_t seed : {1u, 2u, 3u})
    run_model(seed);
}

}  // namespace
}  // namespace hvmm::vmm
