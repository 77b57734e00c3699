// BalloonBackend: how the balloon gives guest pages back to the host and takes them back.
//
// The device calls it with sorted, coalesced, disjoint runs of whole pages that lie inside
// guest RAM (pfn_runs.h makes them), never with raw guest input. The Machine implements it
// over the VM's guest memory; unit tests use a fake that records the runs.
#pragma once

#include <span>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"

namespace hvmm::vmm {

class BalloonBackend {
 public:
  virtual ~BalloonBackend() = default;
  // The guest gave these pages to the balloon: release their host memory.
  virtual Result<void> inflate(std::span<const IpaRange> runs) = 0;
  // The guest takes these pages back: they must read as zero when next touched.
  virtual Result<void> deflate(std::span<const IpaRange> runs) = 0;
  // The guest reported these pages free (free page reporting): release their host memory;
  // the guest may reuse them at any time without telling.
  virtual Result<void> report(std::span<const IpaRange> runs) = 0;
};

}  // namespace hvmm::vmm
