// WorkingSetCounter: the working-set estimate of one epoch, from page ages alone.
//
// Each page the engine knows (resident, pending or reclaimed) is counted in the bin of its
// idle age, epochs since its last write or refault times the epoch period, so a page idle for
// 3 epochs of 1 s lands in the "< 10 s" bin. Unseen pages (never written, or holes again: not
// in host memory) are not counted: the estimate answers "how much of what this VM holds, or
// held and gave to the pool, is in use", and a page that costs nothing is not part of it.
// What the estimate cannot see: a page the guest only reads while it stays resident ages as
// if idle (reads are caught only when they refault), so a read-mostly working set is
// underestimated until reclaim takes those pages and their refaults bring them back young.
#pragma once

#include <chrono>
#include <cstdint>

#include "hvmm/vmm/reclaim/page_ages.h"
#include "hvmm/vmm/reclaim/reclaim_stats.h"

namespace hvmm::vmm {

class WorkingSetCounter {
 public:
  // Bins of `bounds` (WorkingSetEstimate's defaults) for epochs of `period`; pages idle for
  // fewer than `cold_epochs` are also counted as young (the working set the promotion budget
  // is measured against).
  WorkingSetCounter(std::chrono::milliseconds period, uint64_t cold_epochs, uint64_t epoch);

  // Count one decoded page (unseen pages are ignored).
  void add(const PageAgeView& view);
  // The bin an idle age of `idle` epochs falls in.
  size_t bin_of(uint64_t idle) const;

  const WorkingSetEstimate& estimate() const { return estimate_; }
  // Counted pages idle for fewer than cold_epochs.
  uint64_t young_pages() const { return young_; }

 private:
  WorkingSetEstimate estimate_;
  std::chrono::milliseconds period_;
  uint64_t cold_epochs_;
  uint64_t young_ = 0;
};

}  // namespace hvmm::vmm
