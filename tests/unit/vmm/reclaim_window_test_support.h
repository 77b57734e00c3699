// Helpers of the reclaim window tests: an in-memory ReclaimStore (a map under a mutex, with
// knobs for failing loads, refusing pages and holding store() on a latch), ReclaimEvents
// that count, and a fixture wiring a GuestPhysical, a FaultHandler (WP registered, the
// GuestPhysical as its resolver and ReclaimedPages) and a Reclaimer, with no KVM: host
// threads touching the primary mapping stand in for vCPUs.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "hvmm/vmm/fault/fault_handler.h"
#include "hvmm/vmm/memory/guest_physical.h"
#include "hvmm/vmm/reclaim/pool/compressed_pool.h"
#include "hvmm/vmm/reclaim/reclaimer.h"

namespace hvmm::vmm::testing {

using PageBytes = std::array<uint8_t, kPageSize>;

// FakeReclaimStore: whole pages in a std::map; every page is kept unless `refuse` says
// otherwise.
class FakeReclaimStore final : public ReclaimStore {
 public:
  Result<StoreOutcome> store(Ipa page, std::span<const uint8_t, kPageSize> contents) override {
    wait_at_latch();
    std::lock_guard guard(lock_);
    ++stores_;
    if (failing_stores.count(page.value()) != 0) {
      return make_error(ErrorCode::kInternal, "store of page {:#x} failed", page.value());
    }
    if (refuse) {
      if (auto outcome = refuse(page)) {
        entries_.erase(page.value());
        return *outcome;
      }
    }
    std::memcpy(entries_[page.value()].data(), contents.data(), kPageSize);
    return StoreOutcome::kCompressed;
  }
  Result<void> load(Ipa page, std::span<uint8_t, kPageSize> out) override {
    std::lock_guard guard(lock_);
    if (failing_loads.count(page.value()) != 0) {
      return make_error(ErrorCode::kDataLoss, "entry of page {:#x} fails its check", page.value());
    }
    auto it = entries_.find(page.value());
    if (it == entries_.end()) {
      return make_error(ErrorCode::kNotFound, "no entry for page {:#x}", page.value());
    }
    std::memcpy(out.data(), it->second.data(), kPageSize);
    ++loads_;
    return Ok();
  }
  void erase(Ipa page) override {
    std::lock_guard guard(lock_);
    entries_.erase(page.value());
  }
  bool contains(Ipa page) const override {
    std::lock_guard guard(lock_);
    return entries_.count(page.value()) != 0;
  }
  ReclaimStoreStats stats() const override {
    std::lock_guard guard(lock_);
    ReclaimStoreStats stats;
    stats.codec = "fake";
    stats.entries = entries_.size();
    stats.stores = stores_;
    stats.loads = loads_;
    return stats;
  }
  uint64_t entries() const { return stats().entries; }

  // Make store() wait, once it is called, until release_latch(); wait_latched() returns once
  // a store() is waiting.
  void arm_latch() {
    std::lock_guard guard(latch_lock_);
    latch_armed_ = true;
    latched_ = false;
  }
  bool wait_latched(std::chrono::milliseconds timeout) {
    std::unique_lock guard(latch_lock_);
    return latch_changed_.wait_for(guard, timeout, [&] { return latched_; });
  }
  void release_latch() {
    std::lock_guard guard(latch_lock_);
    latch_armed_ = false;
    latch_changed_.notify_all();
  }

  // Pages whose store() fails (set before use).
  std::set<uint64_t> failing_stores;
  // Pages whose load() fails with kDataLoss (set before use).
  std::set<uint64_t> failing_loads;
  // Returns the outcome for pages the store does not keep (set before use).
  std::function<std::optional<StoreOutcome>(Ipa page)> refuse;

 private:
  void wait_at_latch() {
    std::unique_lock guard(latch_lock_);
    if (!latch_armed_)
      return;
    latched_ = true;
    latch_changed_.notify_all();
    latch_changed_.wait(guard, [&] { return !latch_armed_; });
  }

  mutable std::mutex lock_;
  std::map<uint64_t, PageBytes> entries_;
  uint64_t stores_ = 0;
  uint64_t loads_ = 0;
  std::mutex latch_lock_;
  std::condition_variable latch_changed_;
  bool latch_armed_ = false;
  bool latched_ = false;
};

// CountingEvents: what the refault and VMM-access paths reported.
class CountingEvents final : public ReclaimEvents {
 public:
  void refaulted(IpaRange run, uint64_t latency_ns) override {
    refaulted_pages += run.size / kPageSize;
    uint64_t seen = max_refault_pages.load();
    while (seen < run.size / kPageSize &&
           !max_refault_pages.compare_exchange_weak(seen, run.size / kPageSize)) {
    }
    ++refaults;
    last_latency_ns = latency_ns;
  }
  void vmm_accessed(IpaRange, bool write, uint64_t restored) override {
    ++(write ? vmm_writes : vmm_reads);
    vmm_restored += restored;
  }
  std::atomic<uint64_t> refaults{0};
  std::atomic<uint64_t> refaulted_pages{0};
  std::atomic<uint64_t> max_refault_pages{0};
  std::atomic<uint64_t> last_latency_ns{0};
  std::atomic<uint64_t> vmm_reads{0};
  std::atomic<uint64_t> vmm_writes{0};
  std::atomic<uint64_t> vmm_restored{0};
};

// Why the reclaim window cannot run here ("" when it can): userfaultfd, WP on shmem.
inline std::string reclaim_unavailable() {
  auto probe = Userfaultfd::open();
  if (!probe.ok())
    return probe.error().message;
  constexpr uint64_t kWp = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
  if ((probe->features() & kWp) != kWp)
    return "userfaultfd offers no write protection on shmem";
  return "";
}

// A GuestPhysical of `ram` bytes with a WP-registered FaultHandler and a Reclaimer over it.
class ReclaimFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = reclaim_unavailable(); !why.empty()) {
      GTEST_SKIP() << "skip: " << why;
    }
  }
  // Build everything; `threads` handler threads.
  void start(uint64_t ram, unsigned threads = 1) {
    auto created = GuestPhysical::create(ram, "reclaim-test", 1);
    ASSERT_TRUE(created.ok()) << created.error().message;
    physical = std::move(*created);
    FaultHandlerConfig config;
    for (const RamRegion& region : physical->ram()) {
      config.regions.push_back(FaultRegion{region.range.start,
                                           physical->memory().guest_base() + region.offset.value(),
                                           region.offset, region.range.size});
    }
    config.memfd = physical->memory().fd();
    config.threads = threads;
    config.register_write_protect = true;
    config.reclaimed = physical.get();
    config.stop = [this](int status, const std::string& reason) {
      std::lock_guard guard(stop_lock);
      stop_reason = reason;
      stop_status = status;
    };
    auto made = FaultHandler::create(*physical, std::move(config));
    ASSERT_TRUE(made.ok()) << made.error().message;
    handler = std::move(*made);
    reclaimer = std::make_unique<Reclaimer>(*physical, handler->uffd(), active_store(), &events);
  }
  // Use the real CompressedPool (LZ4, no limit) instead of the fake store; before start().
  void use_compressed_pool() {
    auto created = CompressedPool::create(PoolConfig{});
    ASSERT_TRUE(created.ok()) << created.error().message;
    pool = std::move(*created);
  }
  // The store the reclaimer and the fault path use.
  ReclaimStore& active_store() {
    if (pool)
      return *pool;
    return store;
  }
  void TearDown() override {
    reclaimer.reset();
    handler.reset();
  }
  // The primary (guest) mapping's address of `ipa` (RAM below 3 GiB: IPA = host offset).
  uint8_t* guest(Ipa ipa) const { return physical->memory().guest_base() + ipa.value(); }
  // The backing the map gives `ipa`'s page.
  stage2::Backing backing_at(Ipa ipa) const {
    return physical->map().translate(ipa)->state.backing;
  }
  // Reclaim `runs` and expect success.
  ReclaimBatch reclaim(std::vector<IpaRange> runs) {
    auto batch = reclaimer->reclaim(runs);
    EXPECT_TRUE(batch.ok()) << batch.error().message;
    return batch.ok() ? std::move(*batch) : ReclaimBatch{};
  }
  // The stop reason so far ("" when the handler never stopped the VM).
  std::string stopped() {
    std::lock_guard guard(stop_lock);
    return stop_reason;
  }

  FakeReclaimStore store;
  std::unique_ptr<CompressedPool> pool;  // use_compressed_pool(): replaces `store`
  CountingEvents events;
  std::unique_ptr<GuestPhysical> physical;
  std::unique_ptr<FaultHandler> handler;
  std::unique_ptr<Reclaimer> reclaimer;
  std::mutex stop_lock;
  std::string stop_reason;
  int stop_status = -1;
};

}  // namespace hvmm::vmm::testing
