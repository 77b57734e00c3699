// Machine's memory controls (memory_controls.h): KVM's figures, stage-2 shootdowns and
// invalidations, aging, the dirty log and reclaim on request.
//
// Locks, in the order they are taken: controls_lock_ (shared; closed by the VM's stop before
// the fault handler stops, since a zap waits for the handler), the reclaim engine's epoch
// lock (hold_epochs: no reclaim window is open while KVM's translations are zapped: the
// window's write protection lives in the entries the zap removes), then what GuestPhysical
// takes. The zap itself holds no map lock (guest_physical_controls.cc says why).
#include <chrono>

#include "hvmm/vmm/machine/exit_status.h"
#include "hvmm/vmm/machine/machine.h"

namespace hvmm::vmm {
namespace {

using Clock = std::chrono::steady_clock;

// How KVM is made to drop its translations (vmm/memory/README.md says why this way).
constexpr const char* kShootdownMechanism =
    "madvise(MADV_DONTNEED) of the memslots' shared mapping: the host's MMU notifier zaps "
    "KVM's stage-2 entries, the pages stay in the memfd";

constexpr unsigned kMaxReclaimEpochs = 100;

uint64_t nanoseconds_since(Clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
}

}  // namespace

KvmMmuStats Machine::kvm_mmu_stats() const {
  return kvm_stats_.read();
}

// Every invalidation kind counts; full flushes (rollovers included) separately too.
Stage2TlbFigures Machine::stage2_tlb_figures() const {
  const stage2::TlbStats stats = physical_->tlb().stats();
  return Stage2TlbFigures{
      .hits = stats.hits,
      .misses = stats.misses,
      .invalidations =
          stats.range_invalidations + stats.vmid_invalidations + stats.full_invalidations,
      .flushes_all = stats.full_invalidations,
  };
}

void Machine::flush_stage2_tlb_all() {
  physical_->flush_tlb();
}

// The shared hold is what stop_fault_handling() waits for before it stops the handler.
Result<std::shared_lock<std::shared_mutex>> Machine::open_controls(const char* what) const {
  std::shared_lock hold(controls_lock_);
  if (!controls_open_) {
    return make_error(ErrorCode::kFailedPrecondition, "{}: VM {} has stopped", what, name_);
  }
  return hold;
}

// The VMM's TLB first, then KVM's, with no reclaim window open meanwhile.
Result<std::pair<uint64_t, uint64_t>> Machine::drop_translations(IpaRange range) {
  std::unique_lock<std::mutex> epochs;
  if (reclaim_) {
    epochs = reclaim_->engine().hold_epochs();
  }
  const uint64_t entries = physical_->invalidate_tlb(range);
  auto pages = physical_->drop_kvm_translations(range);
  HVMM_TRY(pages);
  return std::pair(entries, *pages);
}

// KVM's figures are read outside the timed part; the latency covers the wait for an epoch,
// the TLB invalidation and the zap.
Result<Stage2Shootdown> Machine::shootdown_stage2(IpaRange range) {
  HVMM_TRY(physical_->check_control_range(range));
  auto hold = open_controls("stage-2 shootdown");
  HVMM_TRY(hold);
  Stage2Shootdown done;
  done.range = range;
  done.mechanism = kShootdownMechanism;
  done.kvm_before = kvm_mmu_stats();
  const Clock::time_point start = Clock::now();
  auto dropped = drop_translations(range);
  HVMM_TRY(dropped);
  done.latency_ns = nanoseconds_since(start);
  done.kvm_after = kvm_mmu_stats();
  done.tlb_entries_dropped = dropped->first;
  done.pages = dropped->second;
  return done;
}

// Like a change of the map without the change: the sequence bump (start) comes before the
// TLB drop, as TlbNotifierOps orders it, and the end after KVM's drop.
Result<Invalidation> Machine::invalidate(IpaRange range, stage2::ChangeReason reason) {
  HVMM_TRY(physical_->check_control_range(range));
  auto hold = open_controls("invalidate");
  HVMM_TRY(hold);
  stage2::NotifierRegistry& registry = physical_->notifiers();
  const stage2::Change change{range, stage2::ChangeKind::kInvalidate, reason, /*blockable=*/true};
  Invalidation done;
  const Clock::time_point start = Clock::now();
  done.subscribers = registry.count_overlapping(range);
  HVMM_TRY(registry.invalidate_range_start(change));
  auto dropped = drop_translations(range);
  registry.invalidate_range_end(change);
  HVMM_TRY(dropped);
  done.latency_ns = nanoseconds_since(start);
  return done;
}

Result<AgeResult> Machine::age(IpaRange range, bool clear) {
  HVMM_TRY(physical_->check_control_range(range));
  const GuestPhysical::Aging aging = physical_->age(range, clear);
  return AgeResult{aging.young, aging.young_pages};
}

// With reclaim the engine is the DirtySource's only harvester (it publishes what it finds);
// without, this is.
Result<void> Machine::harvest_dirty_log() {
  if (reclaim_) {
    auto harvested = reclaim_->engine().harvest_now();
    HVMM_TRY(harvested);
    return Ok();
  }
  return dirty_source()->harvest([this](IpaRange run) { dirty_published_->add(run); });
}

Result<DirtyLogSnapshot> Machine::take_dirty_log(IpaRange range) {
  if (dirty_source() == nullptr || !dirty_published_) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "dirty tracking is off for VM {}: create it with dirty tracking "
                      "(VmSpec.dirty_tracking) or with reclaim",
                      name_);
  }
  HVMM_TRY(physical_->check_control_range(range));
  std::lock_guard taking(dirty_take_lock_);
  if (auto harvested = harvest_dirty_log(); !harvested) {
    return make_error(harvested.error().code, "dirty log of VM {}: {}", name_,
                      harvested.error().message);
  }
  DirtyRuns taken = dirty_published_->take(range);
  const Clock::time_point now = Clock::now();
  DirtyLogSnapshot snapshot;
  snapshot.dirty = std::move(taken.runs);
  snapshot.dirty_pages = taken.pages;
  snapshot.interval_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - dirty_taken_at_).count());
  dirty_taken_at_ = now;
  return snapshot;
}

Result<void> Machine::set_reclaim_policy(const ReclaimPolicy& policy) {
  if (!reclaim_) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "VM {} has no reclaim (create it with a reclaim policy)", name_);
  }
  ReclaimEngine& engine = reclaim_->engine();
  HVMM_TRY(check_policy_change(engine.policy(), policy));
  return engine.set_policy(policy);
}

// Data loss in one of these epochs ends the VM exactly as in the engine's own epochs.
Result<ReclaimRun> Machine::reclaim_now(unsigned epochs) {
  if (!reclaim_) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "VM {} has no reclaim (create it with a reclaim policy)", name_);
  }
  if (epochs == 0 || epochs > kMaxReclaimEpochs) {
    return make_error(ErrorCode::kInvalidArgument, "epochs: {} is outside 1..{}", epochs,
                      kMaxReclaimEpochs);
  }
  auto hold = open_controls("reclaim");
  HVMM_TRY(hold);
  ReclaimEngine& engine = reclaim_->engine();
  ReclaimRun run;
  run.before = engine.stats();
  const Clock::time_point start = Clock::now();
  for (unsigned i = 0; i < epochs; ++i) {
    auto epoch = engine.run_epoch();
    if (!epoch) {
      request_stop(kExitInternalError, fmt::format("reclaim: {}", epoch.error().message));
      return epoch.error();
    }
  }
  run.duration_ns = nanoseconds_since(start);
  run.after = engine.stats();
  return run;
}

}  // namespace hvmm::vmm
