// RefaultFiller: bring a run of reclaimed pages back into the registered mapping.
//
// The handler never touches guest memory: each page's contents are loaded from the
// ReclaimedPages into a bounce buffer of the handler thread's own, and the run is installed
// with UFFDIO_COPY, which maps every page whole (a thread faulting meanwhile cannot see a
// half-copied page) and wakes its waiters. Every page is loaded before any is copied, so a
// load error leaves the run untouched. Reclaimed runs are faulted around only a little
// (kDefaultReclaimedCluster, like Linux's page-cluster of 3 for swap-in): each page costs a
// load, and a neighbour may never be touched.
#pragma once

#include <cstdint>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/fault/reclaimed_pages.h"
#include "hvmm/vmm/fault/userfault_fd.h"
#include "hvmm/vmm/fault/zero_fill.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm {

inline constexpr uint64_t kDefaultReclaimedCluster = 8 * kPageSize;

// The cluster size `cluster` asks for: a power of two of at least one page.
uint64_t reclaimed_cluster_size(uint64_t cluster);
// The part of `run` inside the aligned window of `cluster` bytes (a power of two of at least
// one page; 0 or less than a page: one page) that holds `ipa`.
IpaRange reclaimed_cluster(IpaRange run, Ipa ipa, uint64_t cluster);

class RefaultFiller {
 public:
  // A filler whose bounce buffer holds `max_run` bytes (rounded up to whole pages).
  static Result<RefaultFiller> create(uint64_t max_run);

  // Load every page of `run` (at most max_run() bytes) from `pages`, then copy them to
  // [host, host + run.size) of the registered mapping and wake. A page already there (EEXIST)
  // is stepped over and counted as existing. Errors name the page.
  Result<ZeroFillOutcome> fill(Userfaultfd& uffd, ReclaimedPages& pages, IpaRange run,
                               uint8_t* host);
  uint64_t max_run() const { return bounce_.size(); }

 private:
  explicit RefaultFiller(Mapping bounce) : bounce_(std::move(bounce)) {}
  Result<void> load(ReclaimedPages& pages, IpaRange run);
  Result<ZeroFillOutcome> copy(Userfaultfd& uffd, uint8_t* host, uint64_t length);

  Mapping bounce_;
};

}  // namespace hvmm::vmm
