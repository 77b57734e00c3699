// Fakes for the reclaim engine's tests: a PageReclaimer that records what it is handed and
// answers from scripted page sets, a DirtySource scripted per harvest, a ReclaimStore whose
// figures the test sets, and a fake clock. Guest memory is a real GuestPhysical over a memfd;
// pages are allocated by touching them through the alias mapping.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "hvmm/vmm/memory/guest_physical.h"
#include "hvmm/vmm/reclaim/reclaim_engine.h"

namespace hvmm::vmm::testing {

// The IPA of page `n` (the tests' guests are below the MMIO hole: IPA = host offset).
constexpr Ipa page_ipa(uint64_t n) {
  return Ipa(n * kPageSize);
}
// One page as a run.
constexpr IpaRange page_run(uint64_t n) {
  return IpaRange{page_ipa(n), kPageSize};
}

// A store that holds nothing; pool_bytes grows by `bytes_per_page` per reclaimed page.
class FakeStore final : public ReclaimStore {
 public:
  Result<StoreOutcome> store(Ipa, std::span<const uint8_t, kPageSize>) override {
    return StoreOutcome::kCompressed;
  }
  Result<void> load(Ipa, std::span<uint8_t, kPageSize>) override { return Ok(); }
  void erase(Ipa) override {}
  bool contains(Ipa) const override { return false; }
  ReclaimStoreStats stats() const override {
    std::lock_guard guard(lock);
    return figures;
  }
  void add_pool_bytes(uint64_t bytes) {
    std::lock_guard guard(lock);
    figures.pool_bytes += bytes;
  }
  void set_pool(uint64_t pool_bytes, uint64_t limit_bytes) {
    std::lock_guard guard(lock);
    figures.pool_bytes = pool_bytes;
    figures.limit_bytes = limit_bytes;
  }

  mutable std::mutex lock;
  ReclaimStoreStats figures;
};

// Records every window; pages in the scripted sets come back with that outcome, the others
// are reclaimed: punched out of the memfd, and `bytes_per_page` added to the store's pool.
class FakeReclaimer final : public PageReclaimer {
 public:
  FakeReclaimer(GuestPhysical& memory, FakeStore& store) : memory_(memory), store_(store) {}

  Result<ReclaimBatch> reclaim(std::span<const IpaRange> runs) override {
    std::lock_guard guard(lock);
    windows.emplace_back(runs.begin(), runs.end());
    if (fail_next) {
      Error error = *fail_next;
      fail_next.reset();
      return error;
    }
    ReclaimBatch batch;
    for (const IpaRange& run : runs) {
      for (Ipa ipa = run.start; ipa < run.end(); ipa += kPageSize)
        handle(ipa, batch);
    }
    return batch;
  }

  // Every page handed so far, in order, and forget them.
  std::vector<uint64_t> take_pages() {
    std::lock_guard guard(lock);
    std::vector<uint64_t> pages;
    for (const auto& window : windows) {
      for (const IpaRange& run : window) {
        for (Ipa ipa = run.start; ipa < run.end(); ipa += kPageSize)
          pages.push_back(ipa.page_number());
      }
    }
    windows.clear();
    return pages;
  }

  std::mutex lock;
  std::vector<std::vector<IpaRange>> windows;
  std::set<uint64_t> aborted, incompressible, full, skipped;  // page numbers
  // Decides a page's outcome when set (the model test); the sets above otherwise.
  std::function<ReclaimOutcome(uint64_t page)> decide;
  std::optional<Error> fail_next;
  uint64_t bytes_per_page = 0;

 private:
  void handle(Ipa ipa, ReclaimBatch& batch) {
    const uint64_t page = ipa.page_number();
    ReclaimOutcome outcome = decide ? decide(page) : ReclaimOutcome::kReclaimed;
    if (!decide) {
      if (aborted.count(page))
        outcome = ReclaimOutcome::kAborted;
      else if (incompressible.count(page))
        outcome = ReclaimOutcome::kIncompressible;
      else if (full.count(page))
        outcome = ReclaimOutcome::kFull;
      else if (skipped.count(page))
        outcome = ReclaimOutcome::kSkipped;
    }
    switch (outcome) {
      case ReclaimOutcome::kAborted:
        batch.aborted.push_back(ipa);
        return;
      case ReclaimOutcome::kIncompressible:
        batch.incompressible.push_back(ipa);
        return;
      case ReclaimOutcome::kFull:
        batch.full.push_back(ipa);
        return;
      case ReclaimOutcome::kSkipped:
        batch.skipped.push_back(ipa);
        return;
      default:
        break;
    }
    EXPECT_TRUE(memory_.memory().release(HostOffset(ipa.value()), kPageSize).ok());
    store_.add_pool_bytes(bytes_per_page);
    batch.reclaimed += 1;
  }

  GuestPhysical& memory_;
  FakeStore& store_;
};

// Reports the runs queued for the next harvest (or fails it once).
class FakeDirtySource final : public DirtySource {
 public:
  Result<void> harvest(const std::function<void(IpaRange run)>& written) override {
    if (fail_next) {
      fail_next = false;
      return make_error(ErrorCode::kInternal, "fake harvest failure");
    }
    if (on_harvest)
      on_harvest();
    for (const IpaRange& run : next)
      written(run);
    next.clear();
    return Ok();
  }
  DirtyTracking kind() const override { return DirtyTracking::kLog; }
  DirtySourceStats stats() const override { return {}; }

  std::vector<IpaRange> next;
  bool fail_next = false;
  std::function<void()> on_harvest;  // called at every harvest (on the epoch's thread)
};

// A GuestPhysical of `ram` bytes, the fakes, a fake clock and an engine over them.
struct EngineRig {
  explicit EngineRig(uint64_t ram = 8 << 20) {
    auto created = GuestPhysical::create(ram, "reclaim-engine-test", 1);
    EXPECT_TRUE(created.ok()) << created.error().message;
    memory = std::move(*created);
    reclaimer = std::make_unique<FakeReclaimer>(*memory, store);
  }

  // Make the engine with `policy` (and the dirty source unless `with_dirty` is false).
  void make_engine(const ReclaimPolicy& policy, bool with_dirty = true,
                   std::function<void(const Error&)> on_fatal = {}) {
    ReclaimEngine::Deps deps{.memory = *memory,
                             .reclaimer = *reclaimer,
                             .store = store,
                             .dirty = with_dirty ? &dirty : nullptr,
                             .published = published,
                             .clock = [this] { return now; },
                             .log =
                                 [this](const std::string& line) {
                                   std::lock_guard guard(log_lock);
                                   logged.push_back(line);
                                 },
                             .on_fatal = std::move(on_fatal)};
    auto made = ReclaimEngine::create(std::move(deps), policy);
    ASSERT_TRUE(made.ok()) << made.error().message;
    engine = std::move(*made);
  }

  // Allocate pages [first, first + count) by writing through the alias.
  void touch(uint64_t first, uint64_t count = 1, uint8_t value = 0x5a) {
    for (uint64_t n = first; n < first + count; ++n)
      memory->memory().alias_base()[n * kPageSize] = value;
  }
  // What the fault handler does for a refault: fill the page, then report it.
  void refault(uint64_t page, uint64_t latency_ns = 1000) {
    touch(page);
    engine->refaulted(page_run(page), latency_ns);
  }
  // Run one epoch (the fake clock steps by the period first) and return its report.
  EpochReport epoch() {
    now += engine->policy().period;
    auto report = engine->run_epoch();
    EXPECT_TRUE(report.ok()) << report.error().message;
    return report.ok() ? *report : EpochReport{};
  }

  // Run `count` epochs.
  void epochs(int count) {
    for (int i = 0; i < count; ++i)
      epoch();
  }

  std::unique_ptr<GuestPhysical> memory;
  FakeStore store;
  std::unique_ptr<FakeReclaimer> reclaimer;
  FakeDirtySource dirty;
  DirtyAccumulator* published = nullptr;  // set before make_engine() to have harvests published
  ReclaimEngine::Clock::time_point now{};
  std::mutex log_lock;
  std::vector<std::string> logged;  // under log_lock while the service thread runs
  std::unique_ptr<ReclaimEngine> engine;
};

// A policy for tests: 1 s epochs, `cold` epochs cold, no target, a rate and budget that never
// bind unless a test sets them.
inline ReclaimPolicy test_policy(uint32_t cold) {
  ReclaimPolicy policy;
  policy.period = std::chrono::milliseconds(1000);
  policy.cold_epochs = cold;
  policy.promotion_budget = 1e9;
  policy.max_rate = uint64_t{1} << 40;
  return policy;
}

}  // namespace hvmm::vmm::testing
