// WorkingSetCounter: pages into idle-age bins.
#include "hvmm/vmm/reclaim/working_set.h"

namespace hvmm::vmm {

// Empty bins stamped with the epoch they describe.
WorkingSetCounter::WorkingSetCounter(std::chrono::milliseconds period, uint64_t cold_epochs,
                                     uint64_t epoch)
    : period_(period), cold_epochs_(cold_epochs) {
  estimate_.epoch = epoch;
}

// The first bin whose bound the idle time is below; the last bin otherwise. Computed in
// milliseconds of 64 bits: kMaxIdle epochs of even an hour fit.
size_t WorkingSetCounter::bin_of(uint64_t idle) const {
  const uint64_t idle_ms = idle * static_cast<uint64_t>(period_.count());
  for (size_t bin = 0; bin < estimate_.bounds.size(); ++bin) {
    if (idle_ms < static_cast<uint64_t>(estimate_.bounds[bin].count()))
      return bin;
  }
  return WorkingSetEstimate::kBins - 1;
}

// One page in its bin, and in the young count when younger than cold.
void WorkingSetCounter::add(const PageAgeView& view) {
  if (view.state == PageAgeState::kUnseen)
    return;
  estimate_.pages[bin_of(view.idle)] += 1;
  if (view.idle < cold_epochs_)
    young_ += 1;
}

}  // namespace hvmm::vmm
