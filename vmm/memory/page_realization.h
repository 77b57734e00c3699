// PageRealization: the page states of the stage-2 map realized on the memfd.
//
// The invariant it keeps: a page that is not resident (ballooned, reported, reclaimed) or no
// longer mapped is never allocated in the memfd. After a change made pages non-resident, or
// unmapped them (break-before-make step 3, range_updated: the descriptors have changed, the
// notifier invalidation is still open), it punches their host pages out of the memfd with
// fallocate(PUNCH_HOLE | KEEP_SIZE), one call per run that is contiguous in host offsets.
// The punch unmaps the pages from every mapping of the memfd, and the host kernel's MMU
// notifier makes KVM drop its translations of them: no KVM ioctl and no vCPU pause is needed.
// A resident page may be allocated (touched) or a hole (never touched, or deflated): a hole
// reads as zero and is filled on its first touch, by the kernel or a userfaultfd handler.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/stage2/change.h"
#include "hvmm/stage2/stage2_map.h"
#include "hvmm/vmm/memory/guest_memory.h"

namespace hvmm::vmm {

// Call `visit(ipa_run, output)` for each maximal run of leaves in `range` that `select`
// accepts and that is contiguous both in IPA and in host offset.
void for_each_host_run(const stage2::Stage2Map& map, IpaRange range,
                       const std::function<bool(stage2::Descriptor leaf)>& select,
                       const std::function<void(IpaRange run, HostOffset output)>& visit);

// Counters of what the realization did.
struct RealizationStats {
  uint64_t punches = 0;        // fallocate calls
  uint64_t punched_bytes = 0;  // bytes they covered
};

class PageRealization final : public stage2::ChangeHooks {
 public:
  PageRealization(const stage2::Stage2Map& map, GuestMemory& memory) : map_(map), memory_(memory) {}

  Result<void> range_start(const stage2::Change& change) override;
  void range_updated(const stage2::Change& change) override;
  void range_end(const stage2::Change& change) override;

  // The error of the last change's punches, if one failed (hooks cannot fail a committed
  // change: the owner reports it), cleared by the call.
  std::optional<Error> take_error() { return std::exchange(error_, std::nullopt); }
  const RealizationStats& stats() const { return stats_; }

 private:
  void punch(HostRange range);

  const stage2::Stage2Map& map_;
  GuestMemory& memory_;
  std::vector<HostRange> unmapping_;  // host runs of the mapped pages an unmap removes
  std::optional<Error> error_;
  RealizationStats stats_;
};

}  // namespace hvmm::vmm
