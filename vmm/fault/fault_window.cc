// FaultWindow: doubling on sequential faults, halving on scattered ones.
#include "hvmm/vmm/fault/fault_window.h"

#include <bit>

namespace hvmm::vmm {

// A power of two between one page and `max_bytes` (one page when fault-around is off).
FaultWindow::FaultWindow(uint64_t max_bytes, bool adaptive)
    : max_(max_bytes < kPageSize ? kPageSize : std::bit_floor(max_bytes)),
      adaptive_(adaptive),
      size_(adaptive ? kPageSize : max_) {}

// Sequential: the fault is within one window of the last run, on either side: grow.
// Otherwise shrink.
IpaRange FaultWindow::window_for(Ipa ipa) {
  if (!adaptive_) {
    return IpaRange{ipa.align_down(size_), size_};
  }
  const bool after = ipa >= last_end_ && ipa - last_end_ < size_;
  const bool before = ipa < last_start_ && last_start_ - ipa <= size_;
  const bool sequential = have_last_ && (after || before);
  if (sequential) {
    size_ = size_ * 2 <= max_ ? size_ * 2 : max_;
  } else if (have_last_) {
    size_ = size_ / 2 >= kPageSize ? size_ / 2 : kPageSize;
  }
  return IpaRange{ipa.align_down(size_), size_};
}

// The next fault is judged against the end of what was filled.
void FaultWindow::resolved(IpaRange run) {
  have_last_ = true;
  last_start_ = run.start;
  last_end_ = run.end();
}

}  // namespace hvmm::vmm
