// FaultWindow: how much a fault resolves around the faulting page, adapted like readahead.
//
// One FaultWindow per fault stream (a vCPU, or the kernel threads that fault for the vCPUs).
// A fault that lands next to the run the previous fault resolved (within one window of either
// end: a guest's allocator often hands out frames in descending order, and KVM's async
// page-fault workers resolve neighbouring faults out of order) is sequential: the window
// doubles, up to the maximum. Any other fault is scattered: the window halves, down to one
// page. The
// window is aligned to its size and contains the faulting page; the handler then clips it to
// the run the resolver allows (never past a page whose state differs), and reports that run
// back with resolved(), so the next fault is judged against what was really filled.
// A maximum of 0 disables fault-around: every window is one page. A fixed window (not
// adaptive) is always the maximum, whatever the history (for measurements).
#pragma once

#include <cstdint>

#include "hvmm/base/address.h"

namespace hvmm::vmm {

class FaultWindow {
 public:
  static constexpr uint64_t kDefaultMax = kLargePageSize;  // 2 MiB

  // `max_bytes` is rounded down to a power of two of at least one page (0: one page).
  explicit FaultWindow(uint64_t max_bytes = kDefaultMax, bool adaptive = true);

  // The aligned window to resolve for a fault at `ipa`, sized from the fault history.
  IpaRange window_for(Ipa ipa);
  // Record the run the fault at the last window_for() really resolved.
  void resolved(IpaRange run);

  // The size the next sequential fault would get, for tests and stats.
  uint64_t current() const { return size_; }
  uint64_t max() const { return max_; }

 private:
  uint64_t max_;
  bool adaptive_;
  uint64_t size_ = kPageSize;  // the window the last fault used
  bool have_last_ = false;
  Ipa last_start_;  // the run the last fault resolved
  Ipa last_end_;
};

}  // namespace hvmm::vmm
