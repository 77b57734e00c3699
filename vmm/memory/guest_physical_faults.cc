// GuestPhysical as the fault handler's FaultResolver: a fault's run from the page states.
//
// The hold between classify() and finish() is the map lock taken exclusively. It cannot
// deadlock: the thread holding it (a fault handler thread) only issues UFFDIO ioctls on the
// registered range, which never fault on guest memory and wait for nothing the lock's other
// users hold; vCPU threads never hold the lock while they run the guest (they fault with it
// released, and take it only inside exit handlers); VMM accesses take it shared and go
// through the alias mapping, which is not registered, so none of them waits for the handler
// while holding the lock. What waits on the hold is bounded by one fill (at most 2 MiB).
#include <mutex>

#include "hvmm/vmm/memory/guest_physical.h"

namespace hvmm::vmm {
namespace {

using stage2::Backing;

// The condition a fault on a page in a non-resident `backing` has.
PageCondition condition_of(Backing backing) {
  switch (backing) {
    case Backing::kBallooned:
      return PageCondition::kBallooned;
    case Backing::kReported:
      return PageCondition::kReported;
    case Backing::kReclaimed:
      return PageCondition::kReclaimed;
    case Backing::kResident:
      break;
  }
  return PageCondition::kAbsent;
}

// True for the conditions whose pages the map says are not resident.
bool non_resident(PageCondition condition) {
  return condition == PageCondition::kBallooned || condition == PageCondition::kReported ||
         condition == PageCondition::kReclaimed;
}

}  // namespace

// Look the page up, take the run of leaves sharing its backing around it (host-contiguous,
// inside the window), and for a resident page narrow it to the memfd extent of the page.
// The lock is moved into fault_hold_ only on success, once it is held.
Result<FaultRun> GuestPhysical::classify(Ipa ipa, IpaRange window) {
  std::unique_lock hold(lock_);
  auto translation = map_->translate(ipa);
  if (!translation || !window.contains(ipa) || window.overflows()) {
    return make_error(ErrorCode::kNotFound, "fault at IPA {:#x} (window {}): not guest RAM",
                      ipa.value(), window);
  }
  const Backing backing = translation->state.backing;
  std::optional<std::pair<IpaRange, HostOffset>> found;
  for_each_host_run(
      *map_, window, [backing](stage2::Descriptor leaf) { return leaf.state().backing == backing; },
      [&](IpaRange part, HostOffset output) {
        if (part.contains(ipa))
          found.emplace(part, output);
      });
  if (!found) {
    return make_error(ErrorCode::kInternal, "fault at IPA {:#x}: no run of the map holds it",
                      ipa.value());
  }
  FaultRun run{found->first, condition_of(backing)};
  if (backing == Backing::kResident) {
    auto resident = classify_resident(ipa, found->first, found->second);
    HVMM_TRY(resident);
    run = *resident;
  }
  fault_hold_ = std::move(hold);
  return run;
}

// A hole of the memfd is an absent page (zero fill), an allocated page is present (another
// path filled it: only wake).
Result<FaultRun> GuestPhysical::classify_resident(Ipa ipa, IpaRange part, HostOffset output) const {
  const HostOffset page = output + (ipa.align_down(kPageSize) - part.start);
  auto extent = memory_->extent_around(page, HostRange{output, part.size});
  if (!extent) {
    return make_error(extent.error().code, "fault at IPA {:#x}: {}", ipa.value(),
                      extent.error().message);
  }
  const IpaRange range{part.start + (extent->range.start - output), extent->range.size};
  return FaultRun{range, extent->allocated ? PageCondition::kPresent : PageCondition::kAbsent};
}

// Record the fill in the map (or undo a partial one on the memfd), then drop the hold. A
// restored reclaimed run's entries are erased before the hold ends: once the lock is free a
// reclaim window may take the pages again and store new entries for them.
void GuestPhysical::finish(const FaultRun& run, bool filled) {
  std::unique_lock<std::shared_mutex> hold = std::move(fault_hold_);
  if (!hold.owns_lock() || !non_resident(run.condition)) {
    return;  // absent and present pages are resident in the map already
  }
  if (filled) {
    auto changed = change_backing(hold, run.range, Backing::kResident,
                                  ChangeOptions{stage2::ChangeReason::kFault, /*blockable=*/true,
                                                /*restores_contents=*/true});
    if (changed.ok()) {
      if (run.condition == PageCondition::kReclaimed)
        erase_entries(hold, run.range);
      return;
    }
  }
  release_unfilled(run.range);
}

// Punch each host run of non-resident pages in `run`: a failed or partial fill may have
// allocated some of them. A punch that fails cannot be reported from here; it only follows a
// failed fault, for which the handler stops the VM.
void GuestPhysical::release_unfilled(IpaRange run) {
  for_each_host_run(
      *map_, run,
      [](stage2::Descriptor leaf) { return leaf.state().backing != Backing::kResident; },
      [&](IpaRange part, HostOffset output) {
        [[maybe_unused]] auto released = memory_->release(output, part.size);
      });
}

}  // namespace hvmm::vmm
