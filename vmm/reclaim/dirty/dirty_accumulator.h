// DirtyAccumulator: the guest pages written since a reader last took them.
//
// A DirtySource has one harvester (its harvest re-arms what it reports, so a second
// harvester would steal the first one's pages). When a VM runs reclaim, that harvester is the
// engine; the dirty log a client asks for (Machine::take_dirty_log) is then what the engine
// publishes here. Without reclaim the Machine harvests into it itself. take(range) returns
// the pages of `range` added since they were last taken, as coalesced IPA runs, and clears
// exactly those: pages outside the range stay for a later take that covers them.
//
// One bit per page of the memfd (8 KiB for 256 MiB of RAM), numbered like the reclaim
// engine's page ages (guest_page_index.h); one mutex. add() costs O(pages of the run),
// take() O(pages of the range / 64) plus the runs found.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/vmm/memory/memory_layout.h"
#include "hvmm/vmm/reclaim/guest_page_index.h"

namespace hvmm::vmm {

// Runs of written pages, in IPA order, and how many pages they hold.
struct DirtyRuns {
  std::vector<IpaRange> runs;
  uint64_t pages = 0;
};

class DirtyAccumulator {
 public:
  // Pages of `ram` (regions inside a memfd of `backing_size` bytes).
  DirtyAccumulator(std::vector<RamRegion> ram, uint64_t backing_size);

  // Mark every RAM page `run` touches written (parts outside RAM are ignored). Thread-safe.
  void add(IpaRange run);
  // The marked pages inside `range`, coalesced, and unmark them. Thread-safe.
  DirtyRuns take(IpaRange range);
  // Pages marked now (for tests and figures).
  uint64_t pending() const;

 private:
  GuestPageIndex index_;
  mutable std::mutex lock_;
  std::vector<uint64_t> bits_;  // bit i % 64 of word i / 64: page index i
  uint64_t pending_ = 0;
};

}  // namespace hvmm::vmm
