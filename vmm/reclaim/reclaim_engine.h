// ReclaimEngine: which guest pages go to the pool and when, from outside the guest.
//
// One epoch (run_epoch(), every policy.period on a service thread after start()):
//  1. harvest the DirtySource: every page written since the last harvest is idle 0;
//  2. reconcile the page ages with the memfd's allocated extents and count the working set
//     (pages by idle age; working_set.h);
//  3. unless the promotion-rate budget is exceeded (promotions during the last minute over
//     the VM's footprint, every page the working set counts, above policy.promotion_budget: the
//     epoch backs off), choose the coldest candidates (reclaim_candidates.h): resident, allocated,
//     idle for at least policy.cold_epochs (an active page: effective_active_epochs()), not
//     known incompressible, up to the goal (with a target, until the memfd's allocated bytes
//     plus the store's pool bytes are at most the target; without one, every cold page) and
//     never more than policy.max_rate * period; hand them to the PageReclaimer in windows of
//     at most 2 MiB of pages, IPA-contiguous runs, and settle each page with the window's
//     outcome (page_ages.h);
//  4. end the epoch (the page ages' clock steps).
// Errors of an epoch (a failed harvest, a failed window) are counted in stats().errors and
// logged; the epoch goes on or skips its reclaim. Only a window that reports data loss
// (ErrorCode::kDataLoss: an entry failed its check) makes run_epoch() fail, and the service
// thread then stops and calls Deps::on_fatal, which fails the VM.
//
// The engine is also the ReclaimEvents the refault and VMM-access paths report to: each
// event is a CAS per page on the page ages plus a few atomic counters (and a short lock for
// the latency histogram), never the epoch's work.
//
// Each harvest's runs are also published to Deps::published when set (the VM's dirty log for
// clients, dirty_accumulator.h: the engine is then the DirtySource's only harvester), and
// harvest_now() harvests between epochs, so that log can be fresh.
//
// set_policy() replaces the policy from the next epoch on. Page ages are kept in epochs
// across a change: a new cold threshold applies to the ages pages already have (lowered, the
// pages idle that long are candidates at once; raised, they wait longer), and the working-set
// bins, bounded in time (idle epochs times the period), do not move with it: only a new
// period changes them, and then ages counted under the old period are read at the new one
// until pages age again. The refault distance and the active period apply to the events
// and epochs that follow; a page already active stays active until its active period ends.
//
// Without a DirtySource (null: tests, hosts without dirty tracking) nothing is seen written
// except VMM writes, refaults and aborted reclaims: a page the guest keeps writing looks cold
// after cold_epochs, is handed to the reclaimer, and its first write during the window aborts
// it (counted, and the page is young again). Correct, but it costs a write-protect fault per
// hot page and cold period.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include "hvmm/base/result.h"
#include "hvmm/vmm/memory/guest_physical.h"
#include "hvmm/vmm/reclaim/dirty/dirty_accumulator.h"
#include "hvmm/vmm/reclaim/dirty/dirty_source.h"
#include "hvmm/vmm/reclaim/guest_page_index.h"
#include "hvmm/vmm/reclaim/page_ages.h"
#include "hvmm/vmm/reclaim/page_reclaimer.h"
#include "hvmm/vmm/reclaim/reclaim_candidates.h"
#include "hvmm/vmm/reclaim/reclaim_policy.h"
#include "hvmm/vmm/reclaim/reclaim_stats.h"
#include "hvmm/vmm/reclaim/reclaim_store.h"

namespace hvmm::vmm {

// What one epoch did.
struct EpochReport {
  uint64_t epoch = 0;            // the epoch that ran
  uint64_t dirty_pages = 0;      // pages the harvest reported written
  uint64_t allocated_bytes = 0;  // the memfd's allocated bytes when the epoch began
  uint64_t pool_bytes = 0;       // the store's pool bytes when it ended
  uint64_t eligible = 0;         // candidates found
  uint64_t handed = 0;           // pages handed to the reclaimer
  uint64_t windows = 0;          // PageReclaimer::reclaim calls
  uint64_t reclaimed = 0;
  uint64_t aborted = 0;
  uint64_t incompressible = 0;
  uint64_t full = 0;
  uint64_t skipped = 0;
  uint64_t errors = 0;
  bool backed_off = false;    // the promotion budget stopped reclaim
  bool goal_reached = false;  // a target is set and was met when the epoch ended
  double promotion_rate = 0;  // promotions in the last minute / footprint pages
  WorkingSetEstimate working_set;
};

class ReclaimEngine final : public ReclaimEvents {
 public:
  using Clock = std::chrono::steady_clock;

  // What the engine works with; every reference must outlive it.
  struct Deps {
    GuestPhysical& memory;
    PageReclaimer& reclaimer;
    ReclaimStore& store;
    DirtySource* dirty = nullptr;  // null: no dirty tracking (see above)
    // Where each harvest's runs are published too (null: nowhere).
    DirtyAccumulator* published = nullptr;
    // Time for the promotion window (tests pass a fake one; the service thread paces its
    // epochs on the steady clock regardless).
    std::function<Clock::time_point()> clock = [] { return Clock::now(); };
    // Where epoch errors are logged (default: stderr, "hvmm: reclaim: ...").
    std::function<void(const std::string&)> log;
    // Called on the service thread when an epoch reports data loss (fail the VM).
    std::function<void(const Error&)> on_fatal;
  };

  // Pages per reclaim window: 2 MiB of pages.
  static constexpr uint64_t kWindowPages = kLargePageSize / kPageSize;
  // The window over which the promotion rate is measured.
  static constexpr std::chrono::seconds kPromotionWindow{60};

  // An engine for `deps.memory` under `policy` (which must name a period and at least one
  // cold epoch). Nothing runs until start() or run_epoch().
  static Result<std::unique_ptr<ReclaimEngine>> create(Deps deps, const ReclaimPolicy& policy);
  ReclaimEngine(Deps deps, const ReclaimPolicy& policy);
  ~ReclaimEngine() override;
  ReclaimEngine(const ReclaimEngine&) = delete;
  ReclaimEngine& operator=(const ReclaimEngine&) = delete;

  // Run one epoch now (serialized with the service thread's). Fails only on data loss.
  Result<EpochReport> run_epoch();
  // Harvest the DirtySource now, between epochs (serialized with them): its pages are young
  // in the current epoch, as the next epoch's harvest would have made them, and are
  // published. Returns the pages reported (0 without a DirtySource).
  Result<uint64_t> harvest_now();
  // Hold off epochs while the returned lock lives (an epoch in progress finishes first): for
  // work that must not meet an open reclaim window. Do not call the engine meanwhile.
  std::unique_lock<std::mutex> hold_epochs();
  // Replace the policy from the next epoch on (see above); checked like create(). Thread-safe.
  Result<void> set_policy(const ReclaimPolicy& policy);
  // Run an epoch every policy.period on a service thread, until stop().
  Result<void> start();
  // Stop the service thread (an epoch in progress finishes first) and join it. Idempotent.
  void stop();

  // ReclaimEvents (any thread).
  void refaulted(IpaRange run, uint64_t latency_ns) override;
  void vmm_accessed(IpaRange run, bool write, uint64_t restored) override;

  ReclaimStats stats() const;
  // The estimate of the last epoch (empty before the first).
  WorkingSetEstimate working_set() const;
  // Epochs since `ipa`'s page was last written or refaulted, or nothing when the engine has
  // not seen it in memory (for tests and diagnostics).
  std::optional<uint64_t> idle_epochs(Ipa ipa) const;
  // The policy in force (a set_policy() one from the epoch after the call on).
  ReclaimPolicy policy() const;

 private:
  struct Scan;
  struct Window;

  Result<void> harvest(EpochReport& report);
  // Under the epoch lock: make a pending set_policy() the policy in force.
  void apply_pending_policy();
  std::chrono::milliseconds period() const;
  Scan scan(const std::vector<HostRange>* extents, EpochReport& report);
  double promotion_rate(uint64_t footprint_pages);
  Result<void> reclaim_coldest(const Scan& scan, EpochReport& report);
  Result<uint64_t> run_window(std::span<const Candidate> chunk, const CandidateRule& rule,
                              EpochReport& report);
  void settle(Window& window, const ReclaimBatch& batch, EpochReport& report);
  CandidateRule candidate_rule() const;
  bool goal_met(uint64_t allocated) const;
  void record(const EpochReport& report);
  void log(const std::string& message) const;
  void service_loop();

  Deps deps_;
  // The policy: written under both epoch_lock_ and policy_lock_ (apply_pending_policy), so
  // the epoch reads it under its own lock and everyone else under policy_lock_.
  mutable std::mutex policy_lock_;
  ReclaimPolicy policy_;
  std::optional<ReclaimPolicy> pending_policy_;  // policy_lock_
  GuestPageIndex index_;
  PageAges ages_;
  std::atomic<uint64_t> distance_;  // refault distance, clamped below kMaxIdle (any thread)
  std::optional<uint64_t> target_;  // epoch only

  // Event counters (any thread).
  std::atomic<uint64_t> refaults_{0};
  std::atomic<uint64_t> activated_{0};
  std::atomic<uint64_t> vmm_restores_{0};
  std::atomic<uint64_t> promotions_{0};  // refaulted + restored pages
  mutable std::mutex latency_lock_;
  LatencyHistogram latency_;

  // Epoch state (epoch_lock_ serializes epochs; stats_lock_ guards what stats() reads).
  std::mutex epoch_lock_;
  std::deque<std::pair<Clock::time_point, uint64_t>> promotion_samples_;
  mutable std::mutex stats_lock_;
  ReclaimStats totals_;
  WorkingSetEstimate working_set_;

  // The service thread.
  std::mutex run_lock_;
  std::condition_variable wake_;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace hvmm::vmm
