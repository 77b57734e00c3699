// FaultResolver: what the fault handler asks the memory side (GuestPhysical implements it).
//
// The handler knows userfaultfd; the resolver knows page states. For each MISSING fault the
// handler picks an aligned window around the faulting IPA (FaultWindow) and asks classify()
// which run of it may be filled: the pages around the faulting one, inside the window, that
// are all in the same condition as it. After filling it reports back with finish(), once for
// every successful classify(). Between the two the resolver must hold off state changes of
// the run (a release or a reclaim racing with the fill), e.g. with a range lock.
#pragma once

#include <cstdint>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"

namespace hvmm::vmm {

// The condition of a RAM page as the map sees it when the guest touches it.
enum class PageCondition : uint8_t {
  kAbsent,     // resident in the map, never filled (or its contents were dropped): zero fill
  kBallooned,  // given back by the balloon: zero fill, then resident
  kReported,   // reported free by the guest (free page reporting): zero fill, logged "missing"
  kReclaimed,  // contents in the reclaim store: restored through ReclaimedPages
  kPresent,    // already filled by another path (the alias, another fault): only wake
};

// A run of pages in one condition: what classify() allows one fault to resolve.
struct FaultRun {
  IpaRange range;  // contains the faulting IPA, inside the window asked for, page aligned
  PageCondition condition = PageCondition::kAbsent;
};

class FaultResolver {
 public:
  virtual ~FaultResolver() = default;
  // The condition of `ipa`'s page and the largest page-aligned run inside `window` that
  // contains it, whose pages share that condition (and for an absent condition, are all
  // still unfilled). An error (not RAM) fails the fault and stops the VM.
  virtual Result<FaultRun> classify(Ipa ipa, IpaRange window) = 0;
  // The handler is done with `run`: `filled` says its pages now hold data (record them
  // resident), false that it left them as they were (a failed fill or load).
  virtual void finish(const FaultRun& run, bool filled) = 0;
};

}  // namespace hvmm::vmm
