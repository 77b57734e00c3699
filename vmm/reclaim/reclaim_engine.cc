// ReclaimEngine: the epoch (harvest, scan, choose, hand over, settle) and the events.
#include "hvmm/vmm/reclaim/reclaim_engine.h"

#include <algorithm>

#include "hvmm/vmm/host/service_thread.h"
#include "hvmm/vmm/reclaim/working_set.h"

namespace hvmm::vmm {

// The allocated pages of one epoch, as page-index runs, and what the scan measured.
struct ReclaimEngine::Scan {
  std::vector<PageIndexRun> allocated;
  uint64_t allocated_bytes = 0;
  uint64_t young_pages = 0;
  uint64_t footprint_pages = 0;  // every counted page (resident and allocated, or reclaimed)
};

// One reclaim window: the pages made pending (sorted by index), the words they had and the
// outcome each will settle to.
struct ReclaimEngine::Window {
  std::vector<uint64_t> pages;
  std::vector<uint32_t> before;
  std::vector<ReclaimOutcome> outcomes;
};

namespace {

// The index runs of page-aligned host extents.
std::vector<PageIndexRun> index_runs(const std::vector<HostRange>& extents, uint64_t pages) {
  std::vector<PageIndexRun> runs;
  runs.reserve(extents.size());
  for (const HostRange& extent : extents) {
    const uint64_t first = extent.start.page_number();
    const uint64_t end = std::min(pages, (extent.start.value() + extent.size) / kPageSize);
    if (first < end)
      runs.push_back(PageIndexRun{first, end - first});
  }
  return runs;
}

// Runs of consecutive indexes in sorted `pages`.
std::vector<PageIndexRun> consecutive_runs(const std::vector<uint64_t>& pages) {
  std::vector<PageIndexRun> runs;
  for (uint64_t page : pages) {
    if (!runs.empty() && runs.back().first + runs.back().count == page)
      runs.back().count += 1;
    else
      runs.push_back(PageIndexRun{page, 1});
  }
  return runs;
}

// Pages a rate of `bytes_per_second` allows in one `period` (at least one).
uint64_t pages_per_epoch(uint64_t bytes_per_second, std::chrono::milliseconds period) {
  const double pages = static_cast<double>(bytes_per_second) * static_cast<double>(period.count()) /
                       1000.0 / static_cast<double>(kPageSize);
  if (pages >= 0x1p62)
    return uint64_t{1} << 62;
  return std::max<uint64_t>(1, static_cast<uint64_t>(pages));
}

}  // namespace

namespace {

// What the epoch cannot run with.
Result<void> check_engine_policy(const ReclaimPolicy& policy) {
  if (policy.period.count() <= 0)
    return make_error(ErrorCode::kInvalidArgument, "reclaim engine: period {} ms: must be > 0",
                      policy.period.count());
  if (policy.cold_epochs == 0)
    return make_error(ErrorCode::kInvalidArgument,
                      "reclaim engine: cold=0: must be at least 1 epoch");
  if (!(policy.promotion_budget >= 0))
    return make_error(ErrorCode::kInvalidArgument,
                      "reclaim engine: budget {}: must not be negative", policy.promotion_budget);
  return Ok();
}

// The refault distance the pages' CAS events use, clamped below kMaxIdle.
uint64_t clamped_distance(const ReclaimPolicy& policy) {
  return std::min<uint64_t>(policy.effective_refault_distance(), PageAges::kMaxIdle - 1);
}

}  // namespace

// Refuse a policy the epoch cannot run with; otherwise build the engine.
Result<std::unique_ptr<ReclaimEngine>> ReclaimEngine::create(Deps deps,
                                                             const ReclaimPolicy& policy) {
  HVMM_TRY(check_engine_policy(policy));
  return std::make_unique<ReclaimEngine>(std::move(deps), policy);
}

// Number the memfd's pages from the layout as it is now (guest_page_index.h says why that
// stays right), and start the promotion window empty.
ReclaimEngine::ReclaimEngine(Deps deps, const ReclaimPolicy& policy)
    : deps_(std::move(deps)),
      policy_(policy),
      index_(deps_.memory.ram(), deps_.memory.memory_size()),
      ages_(index_.pages()),
      distance_(clamped_distance(policy)),
      target_(policy.target_for(deps_.memory.memory_size())) {
  if (!deps_.clock)
    deps_.clock = [] { return Clock::now(); };
  promotion_samples_.emplace_back(deps_.clock(), 0);
}

// Stop the service thread before anything it uses goes away.
ReclaimEngine::~ReclaimEngine() {
  stop();
}

// Harvest, scan, decide, reclaim, record, step the clock. Everything but data loss is
// counted and logged and the epoch goes on.
Result<EpochReport> ReclaimEngine::run_epoch() {
  std::lock_guard epoch(epoch_lock_);
  apply_pending_policy();
  EpochReport report;
  report.epoch = ages_.epoch();
  auto harvested = harvest(report);
  if (!harvested.ok()) {
    report.errors += 1;
    log(fmt::format("epoch {}: dirty harvest failed, no reclaim this epoch: {}", report.epoch,
                    harvested.error().message));
  }
  auto extents = deps_.memory.memory().allocated_extents();
  if (!extents.ok()) {
    report.errors += 1;
    log(fmt::format("epoch {}: reading the memfd's extents failed, no reclaim this epoch: {}",
                    report.epoch, extents.error().message));
  }
  const Scan scanned = scan(extents.ok() ? &*extents : nullptr, report);
  report.promotion_rate = promotion_rate(scanned.footprint_pages);
  Result<void> reclaimed = Ok();
  if (report.promotion_rate > policy_.promotion_budget)
    report.backed_off = true;
  else if (harvested.ok() && extents.ok())
    reclaimed = reclaim_coldest(scanned, report);
  report.pool_bytes = deps_.store.stats().pool_bytes;
  report.goal_reached =
      extents.ok() && goal_met(scanned.allocated_bytes -
                               std::min(scanned.allocated_bytes, report.reclaimed * kPageSize));
  record(report);
  ages_.advance();
  promotion_samples_.emplace_back(deps_.clock(), promotions_.load(std::memory_order_relaxed));
  if (!reclaimed.ok())
    return reclaimed.error();
  return report;
}

// Every page the DirtySource reports is young again, and published.
Result<void> ReclaimEngine::harvest(EpochReport& report) {
  if (deps_.dirty == nullptr)
    return Ok();
  const uint64_t distance = distance_.load(std::memory_order_relaxed);
  return deps_.dirty->harvest([&](IpaRange run) {
    index_.for_each_run(run, [&](PageIndexRun pages) {
      for (uint64_t page = pages.first; page < pages.first + pages.count; ++page)
        ages_.written(page, distance);
      report.dirty_pages += pages.count;
    });
    if (deps_.published != nullptr)
      deps_.published->add(run);
  });
}

// The epoch's harvest, without the rest of the epoch.
Result<uint64_t> ReclaimEngine::harvest_now() {
  std::lock_guard epoch(epoch_lock_);
  EpochReport report;
  HVMM_TRY(harvest(report));
  return report.dirty_pages;
}

std::unique_lock<std::mutex> ReclaimEngine::hold_epochs() {
  return std::unique_lock(epoch_lock_);
}

// Stored; the next epoch applies it (apply_pending_policy), so no epoch sees two policies.
Result<void> ReclaimEngine::set_policy(const ReclaimPolicy& policy) {
  HVMM_TRY(check_engine_policy(policy));
  std::lock_guard guard(policy_lock_);
  pending_policy_ = policy;
  return Ok();
}

// The derived values change with the policy; the page ages do not (see the header).
void ReclaimEngine::apply_pending_policy() {
  std::lock_guard guard(policy_lock_);
  if (!pending_policy_)
    return;
  policy_ = *pending_policy_;
  pending_policy_.reset();
  distance_.store(clamped_distance(policy_), std::memory_order_relaxed);
  target_ = policy_.target_for(deps_.memory.memory_size());
}

ReclaimPolicy ReclaimEngine::policy() const {
  std::lock_guard guard(policy_lock_);
  return policy_;
}

std::chrono::milliseconds ReclaimEngine::period() const {
  std::lock_guard guard(policy_lock_);
  return policy_.period;
}

// One pass over every page: reconcile with the memfd's extents (when they could be read) and
// count the working set. O(pages) of 4-byte loads; the candidate passes are O(allocated).
ReclaimEngine::Scan ReclaimEngine::scan(const std::vector<HostRange>* extents,
                                        EpochReport& report) {
  Scan scanned;
  WorkingSetCounter counter(policy_.period, policy_.cold_epochs, report.epoch);
  if (extents == nullptr) {
    for (uint64_t page = 0; page < ages_.pages(); ++page)
      counter.add(ages_.view(page));
  } else {
    scanned.allocated = index_runs(*extents, ages_.pages());
    auto run = scanned.allocated.begin();
    for (uint64_t page = 0; page < ages_.pages(); ++page) {
      while (run != scanned.allocated.end() && run->first + run->count <= page)
        ++run;
      const bool allocated = run != scanned.allocated.end() && run->first <= page;
      counter.add(ages_.observe(page, allocated));
    }
    for (const PageIndexRun& allocated : scanned.allocated)
      scanned.allocated_bytes += allocated.count * kPageSize;
  }
  report.allocated_bytes = scanned.allocated_bytes;
  report.working_set = counter.estimate();
  scanned.young_pages = counter.young_pages();
  for (uint64_t pages : report.working_set.pages)
    scanned.footprint_pages += pages;
  return scanned;
}

// Promotions since the newest sample that is at least kPromotionWindow old (the one taken at
// the engine's creation while it is younger), per page of the VM's footprint. Not per young
// page, as far memory measures a busy job's: an idle guest's young set is close to empty,
// so against it any refault would exceed the budget and reclaim would stop exactly when the
// guest has the most to give.
double ReclaimEngine::promotion_rate(uint64_t footprint_pages) {
  const Clock::time_point since = deps_.clock() - kPromotionWindow;
  while (promotion_samples_.size() >= 2 && promotion_samples_[1].first <= since)
    promotion_samples_.pop_front();
  const uint64_t recent =
      promotions_.load(std::memory_order_relaxed) - promotion_samples_.front().second;
  return static_cast<double>(recent) / static_cast<double>(std::max<uint64_t>(footprint_pages, 1));
}

// The candidates' thresholds this epoch: full pages once the store has room again, skipped
// ones every cold period.
CandidateRule ReclaimEngine::candidate_rule() const {
  CandidateRule rule;
  rule.cold = std::min<uint64_t>(policy_.cold_epochs, PageAges::kMaxIdle);
  rule.active = std::min<uint64_t>(policy_.effective_active_epochs(), PageAges::kMaxIdle);
  const ReclaimStoreStats store = deps_.store.stats();
  rule.retry_full = store.limit_bytes == 0 || store.pool_bytes + kPageSize <= store.limit_bytes;
  rule.retry_skipped = ages_.epoch() % policy_.cold_epochs == 0;
  return rule;
}

// With a target: the memfd's `allocated` bytes plus the pool's are within it.
bool ReclaimEngine::goal_met(uint64_t allocated) const {
  return target_ && allocated + deps_.store.stats().pool_bytes <= *target_;
}

// Take the coldest candidates, at most the rate allows, and hand them over a window at a
// time until the goal is met. A window's failure ends the epoch's reclaim; data loss is
// returned.
Result<void> ReclaimEngine::reclaim_coldest(const Scan& scanned, EpochReport& report) {
  uint64_t allocated = scanned.allocated_bytes;
  if (goal_met(allocated)) {
    return Ok();
  }
  const CandidateRule rule = candidate_rule();
  const CandidateSelection selection = select_coldest(
      ages_, scanned.allocated, rule, pages_per_epoch(policy_.max_rate, policy_.period));
  report.eligible = selection.eligible;
  std::span<const Candidate> rest(selection.pages);
  while (!rest.empty()) {
    uint64_t size = std::min<uint64_t>(kWindowPages, rest.size());
    if (target_) {
      const uint64_t held = allocated + deps_.store.stats().pool_bytes;
      if (held <= *target_)
        break;
      size = std::min(size, (held - *target_ + kPageSize - 1) / kPageSize);
    }
    auto reclaimed = run_window(rest.first(size), rule, report);
    rest = rest.subspan(size);
    if (!reclaimed.ok()) {
      if (reclaimed.error().code == ErrorCode::kDataLoss)
        return reclaimed.error();
      report.errors += 1;
      log(fmt::format("epoch {}: reclaim window failed, the epoch's reclaim ends: {}", report.epoch,
                      reclaimed.error().message));
      break;
    }
    allocated -= std::min(allocated, *reclaimed * kPageSize);
  }
  return Ok();
}

// Make the chunk's pages pending (in IPA order), hand them over as runs, settle them.
// Returns how many were reclaimed.
Result<uint64_t> ReclaimEngine::run_window(std::span<const Candidate> chunk,
                                           const CandidateRule& rule, EpochReport& report) {
  std::vector<uint64_t> sorted;
  sorted.reserve(chunk.size());
  for (const Candidate& candidate : chunk)
    sorted.push_back(candidate.index);
  std::sort(sorted.begin(), sorted.end());
  Window window;
  for (uint64_t page : sorted) {
    if (auto before = ages_.begin_reclaim(page, rule)) {
      window.pages.push_back(page);
      window.before.push_back(*before);
    }
  }
  if (window.pages.empty())
    return uint64_t{0};
  std::vector<IpaRange> runs;
  for (const PageIndexRun& run : consecutive_runs(window.pages))
    index_.append_ipa_runs(run, runs);
  report.handed += window.pages.size();
  report.windows += 1;
  auto batch = deps_.reclaimer.reclaim(runs);
  window.outcomes.assign(window.pages.size(),
                         batch.ok() ? ReclaimOutcome::kReclaimed : ReclaimOutcome::kFailed);
  if (!batch.ok()) {
    settle(window, ReclaimBatch{}, report);
    return batch.error();
  }
  const uint64_t before = report.reclaimed;
  settle(window, *batch, report);
  const uint64_t reclaimed = report.reclaimed - before;
  if (reclaimed != batch->reclaimed)
    log(fmt::format("epoch {}: the window reported {} pages reclaimed, its lists leave {}",
                    report.epoch, batch->reclaimed, reclaimed));
  return reclaimed;
}

// Mark each listed page with its outcome (pages the window was not given are ignored), then
// settle every page of the window and count the outcomes.
void ReclaimEngine::settle(Window& window, const ReclaimBatch& batch, EpochReport& report) {
  auto mark = [&](const std::vector<Ipa>& pages, ReclaimOutcome outcome) {
    for (Ipa ipa : pages) {
      const std::optional<uint64_t> page = index_.index_of(ipa);
      if (!page)
        continue;
      auto at = std::lower_bound(window.pages.begin(), window.pages.end(), *page);
      if (at != window.pages.end() && *at == *page)
        window.outcomes[static_cast<size_t>(at - window.pages.begin())] = outcome;
    }
  };
  mark(batch.aborted, ReclaimOutcome::kAborted);
  mark(batch.incompressible, ReclaimOutcome::kIncompressible);
  mark(batch.full, ReclaimOutcome::kFull);
  mark(batch.skipped, ReclaimOutcome::kSkipped);
  for (size_t i = 0; i < window.pages.size(); ++i) {
    ages_.end_reclaim(window.pages[i], window.before[i], window.outcomes[i]);
    switch (window.outcomes[i]) {
      case ReclaimOutcome::kReclaimed:
        report.reclaimed += 1;
        break;
      case ReclaimOutcome::kAborted:
        report.aborted += 1;
        break;
      case ReclaimOutcome::kIncompressible:
        report.incompressible += 1;
        break;
      case ReclaimOutcome::kFull:
        report.full += 1;
        break;
      case ReclaimOutcome::kSkipped:
        report.skipped += 1;
        break;
      case ReclaimOutcome::kFailed:
        break;
    }
  }
}

// Fold one epoch into the totals stats() reports.
void ReclaimEngine::record(const EpochReport& report) {
  std::lock_guard guard(stats_lock_);
  totals_.epochs += 1;
  totals_.scanned_pages += report.eligible;
  totals_.reclaimed_pages += report.reclaimed;
  totals_.aborted_pages += report.aborted;
  totals_.incompressible_pages += report.incompressible;
  totals_.full_pages += report.full;
  totals_.backoffs += report.backed_off ? 1 : 0;
  totals_.errors += report.errors;
  totals_.promotion_rate = report.promotion_rate;
  working_set_ = report.working_set;
}

// To Deps::log, or stderr.
void ReclaimEngine::log(const std::string& message) const {
  if (deps_.log)
    deps_.log(message);
  else
    fmt::print(stderr, "hvmm: reclaim: {}\n", message);
}

// Each refaulted page is young again (active when within its distance); one latency sample
// per resolved run.
void ReclaimEngine::refaulted(IpaRange run, uint64_t latency_ns) {
  const uint64_t distance = distance_.load(std::memory_order_relaxed);
  uint64_t pages = 0;
  uint64_t activated = 0;
  index_.for_each_run(run, [&](PageIndexRun part) {
    for (uint64_t page = part.first; page < part.first + part.count; ++page)
      activated += ages_.refaulted(page, distance).activated ? 1 : 0;
    pages += part.count;
  });
  refaults_.fetch_add(pages, std::memory_order_relaxed);
  activated_.fetch_add(activated, std::memory_order_relaxed);
  promotions_.fetch_add(pages, std::memory_order_relaxed);
  std::lock_guard guard(latency_lock_);
  latency_.add(latency_ns);
}

// A VMM write makes its pages young; a read only matters for the pages it restored.
void ReclaimEngine::vmm_accessed(IpaRange run, bool write, uint64_t restored) {
  vmm_restores_.fetch_add(restored, std::memory_order_relaxed);
  promotions_.fetch_add(restored, std::memory_order_relaxed);
  if (!write && restored == 0)
    return;
  const uint64_t distance = distance_.load(std::memory_order_relaxed);
  index_.for_each_run(run, [&](PageIndexRun part) {
    for (uint64_t page = part.first; page < part.first + part.count; ++page) {
      if (write)
        ages_.written(page, distance);
      else
        ages_.restored(page, distance);
    }
  });
}

// The epoch totals plus the event counters and the histogram.
ReclaimStats ReclaimEngine::stats() const {
  ReclaimStats stats;
  {
    std::lock_guard guard(stats_lock_);
    stats = totals_;
  }
  stats.refaults = refaults_.load(std::memory_order_relaxed);
  stats.refaults_activated = activated_.load(std::memory_order_relaxed);
  stats.vmm_restores = vmm_restores_.load(std::memory_order_relaxed);
  stats.reclaimed_now = ages_.reclaimed_now();
  std::lock_guard guard(latency_lock_);
  stats.refault_latency = latency_;
  return stats;
}

// The last epoch's estimate.
WorkingSetEstimate ReclaimEngine::working_set() const {
  std::lock_guard guard(stats_lock_);
  return working_set_;
}

// The page's idle age, or nothing when it is outside RAM or unseen.
std::optional<uint64_t> ReclaimEngine::idle_epochs(Ipa ipa) const {
  const std::optional<uint64_t> page = index_.index_of(ipa);
  if (!page)
    return std::nullopt;
  const PageAgeView view = ages_.view(*page);
  if (view.state == PageAgeState::kUnseen)
    return std::nullopt;
  return view.idle;
}

// Start the service thread (once at a time).
Result<void> ReclaimEngine::start() {
  std::lock_guard guard(run_lock_);
  if (thread_.joinable())
    return make_error(ErrorCode::kFailedPrecondition, "reclaim engine: already started");
  quit_ = false;
  thread_ = start_service_thread([this] { service_loop(); });
  return Ok();
}

// Tell the thread to quit and join it (unless called from the thread itself, through
// on_fatal: then it only quits).
void ReclaimEngine::stop() {
  {
    std::lock_guard guard(run_lock_);
    quit_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id())
    thread_.join();
}

// An epoch at every multiple of the period from the start (an epoch that overruns its
// period makes the next one start at once, not a burst of them); quits at once when told.
void ReclaimEngine::service_loop() {
  std::unique_lock guard(run_lock_);
  Clock::time_point next = Clock::now() + period();
  while (!quit_) {
    if (wake_.wait_until(guard, next, [this] { return quit_; }))
      break;
    guard.unlock();
    auto epoch = run_epoch();
    guard.lock();
    if (!epoch.ok()) {
      log(fmt::format("stopped: {}", epoch.error().message));
      if (deps_.on_fatal) {
        guard.unlock();
        deps_.on_fatal(epoch.error());
        guard.lock();
      }
      return;
    }
    next += period();
    next = std::max(next, Clock::now());
  }
}

}  // namespace hvmm::vmm
