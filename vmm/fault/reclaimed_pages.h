// ReclaimedPages: what the fault handler needs from the reclaim side, and nothing more.
//
// A reclaimed page's contents live outside guest memory (the reclaim store); the handler
// brings them back on a MISSING fault (load, UFFDIO_COPY, then refaulted()), and tells the
// reclaim window about writes to write-protected pages before it lets them through
// (write_fault(), then UFFDIO_WRITEPROTECT off). vmm/reclaim/ implements it
// (StoreReclaimedPages); fault/ knows only this interface. Every method is called from
// fault handler threads and must be thread-safe; none may touch guest memory.
#pragma once

#include <cstdint>
#include <span>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"

namespace hvmm::vmm {

class ReclaimedPages {
 public:
  virtual ~ReclaimedPages() = default;
  // Copy the saved contents of reclaimed page `page` (page aligned) into `out`. An error
  // (kNotFound: nothing saved; kDataLoss: the entry is corrupted or unreadable) fails the
  // fault and stops the VM.
  virtual Result<void> load(Ipa page, std::span<uint8_t, kPageSize> out) = 0;
  // The pages of `run` are resident again (the map says so): forget their saved contents and
  // report the refault, `latency_ns` from the fault's first sight to the wake.
  virtual void refaulted(IpaRange run, uint64_t latency_ns) = 0;
  // The guest is blocked writing `page`, which is write-protected: called before the
  // protection is lifted, so an open reclaim window drops the page.
  virtual void write_fault(Ipa page) = 0;
};

}  // namespace hvmm::vmm
