// PageReclaimer and ReclaimEvents: the seam between the engine (which pages, when) and the
// reclaim window (how a page leaves without losing a write, and how it comes back).
//
// The engine picks candidates and hands them to a PageReclaimer (Reclaimer in production:
// write-protect, copy out, store, commit under the map lock, punch). The refault and VMM
// access paths report back through ReclaimEvents, which the engine implements to keep page
// ages, shadow entries and the refault-latency histogram.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"

namespace hvmm::vmm {

// What one reclaim window did with the pages it was given (pages are page-aligned IPAs).
struct ReclaimBatch {
  uint64_t reclaimed = 0;           // now reclaimed: punched out, contents in the store
  std::vector<Ipa> aborted;         // written during the window: left resident
  std::vector<Ipa> incompressible;  // left resident: not worth storing until written again
  std::vector<Ipa> full;            // left resident: the store had no room
  std::vector<Ipa> skipped;         // no longer candidates (not resident, a hole, pinned)
  uint64_t windows = 0;             // reclaim windows run
  // A window failed after earlier ones committed: what they did is above, the failed
  // window's pages and the rest are in `skipped`, and this says why.
  std::optional<Error> error;
};

class PageReclaimer {
 public:
  virtual ~PageReclaimer() = default;
  // Reclaim every page of `runs` (disjoint, page aligned) that is still resident and
  // allocated, as one window. An error means nothing of the failed part was committed.
  // (Reclaimer splits the runs into windows of bounded size; an error is returned only when
  // nothing was committed, otherwise the batch carries it.)
  virtual Result<ReclaimBatch> reclaim(std::span<const IpaRange> runs) = 0;
};

// Called from fault handler and VMM threads (must be thread-safe and must not block on the
// engine's epoch work).
class ReclaimEvents {
 public:
  virtual ~ReclaimEvents() = default;
  // The guest touched reclaimed pages `run`; they are resident again. `latency_ns` is from
  // the fault's first sight to the wake.
  virtual void refaulted(IpaRange run, uint64_t latency_ns) = 0;
  // The VMM itself accessed `run` (a device's read or write through GuestPhysical): written
  // pages count as written, reclaimed pages were restored first (`restored` of them).
  virtual void vmm_accessed(IpaRange run, bool write, uint64_t restored) = 0;
};

}  // namespace hvmm::vmm
