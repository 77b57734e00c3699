// Machine's memory controls (memory_controls.h). Interim: the contract, before the controls
// are implemented; each reports that it is not available yet.
#include "hvmm/vmm/machine/machine.h"

namespace hvmm::vmm {
namespace {

Error not_yet(const char* what) {
  return make_error(ErrorCode::kUnavailable, "{} is not implemented yet", what);
}

}  // namespace

KvmMmuStats Machine::kvm_mmu_stats() const {
  return {};
}

Stage2TlbFigures Machine::stage2_tlb_figures() const {
  return {};
}

Result<Stage2Shootdown> Machine::shootdown_stage2(IpaRange /*range*/) {
  return not_yet("stage-2 shootdown");
}

void Machine::flush_stage2_tlb_all() {}

Result<Invalidation> Machine::invalidate(IpaRange /*range*/, stage2::ChangeReason /*reason*/) {
  return not_yet("invalidate");
}

Result<AgeResult> Machine::age(IpaRange /*range*/, bool /*clear*/) {
  return not_yet("age");
}

Result<DirtyLogSnapshot> Machine::take_dirty_log(IpaRange /*range*/) {
  return not_yet("the dirty log");
}

Result<void> Machine::set_reclaim_policy(const ReclaimPolicy& /*policy*/) {
  return not_yet("setting the reclaim policy");
}

Result<ReclaimRun> Machine::reclaim_now(unsigned /*epochs*/) {
  return not_yet("reclaim now");
}

}  // namespace hvmm::vmm
