// ZeroFiller: fill a run of a registered mapping with zeros and wake its waiters.
//
// Three ways, measured against each other by tests/bench/vmm/first_touch_bench.cc:
//   kZeroPage   UFFDIO_ZEROPAGE over the run (shmem allocates and clears each page, maps it)
//   kCopy       UFFDIO_COPY from a zero buffer (the same, plus a copy from the zero page)
//   kFallocate  fallocate() of the run's blocks on the memfd, then UFFDIO_WAKE (the pages are
//               cleared and mapped when the woken thread's fault is retried)
// A page another path filled first (the VMM wrote it through the alias mapping, another
// fault's window covered it) stops UFFDIO_ZEROPAGE/COPY with EEXIST: the filler steps over
// it, fills the rest, and wakes the whole run at the end so its waiter is not left asleep.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/fault/userfault_fd.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm {

enum class ZeroFillMethod : uint8_t { kZeroPage, kCopy, kFallocate };

// "zeropage", "copy", "fallocate".
const char* zero_fill_method_name(ZeroFillMethod method);

// What one fill did.
struct ZeroFillOutcome {
  uint64_t pages_filled = 0;    // pages this call filled
  uint64_t pages_existing = 0;  // pages that were already there (EEXIST)
};

// Fill [host, host + length) of a registered range with `fill(at)` (one UFFDIO call from
// offset `at` to the end), stepping over pages another path filled first (EEXIST) and
// retrying EAGAIN (a concurrent mapping change) a bounded number of times; wake the run when
// a page existed (the kernel woke only what it filled, and the faulting page may be the
// existing one). `what` names the operation in errors ("zeropage", "copy").
Result<ZeroFillOutcome> fill_stepping_over_existing(
    Userfaultfd& uffd, uint8_t* host, uint64_t length, std::string_view what,
    const std::function<FillProgress(uint64_t at)>& fill);

class ZeroFiller {
 public:
  // `memfd` backs the registered mapping (only kFallocate uses it). The zero buffer for
  // kCopy is a private anonymous mapping of `max_run` bytes that is only ever read.
  static Result<ZeroFiller> create(ZeroFillMethod method, int memfd, uint64_t max_run);

  // Fill [host, host + length), which is `offset` bytes into the memfd, and wake its waiters.
  Result<ZeroFillOutcome> fill(Userfaultfd& uffd, uint8_t* host, HostOffset offset,
                               uint64_t length) const;
  ZeroFillMethod method() const { return method_; }

 private:
  ZeroFiller(ZeroFillMethod method, int memfd, Mapping zeros)
      : method_(method), memfd_(memfd), zeros_(std::move(zeros)) {}
  Result<ZeroFillOutcome> fill_by_ioctl(Userfaultfd& uffd, uint8_t* host, uint64_t length) const;
  Result<ZeroFillOutcome> fill_by_fallocate(Userfaultfd& uffd, uint8_t* host, HostOffset offset,
                                            uint64_t length) const;

  ZeroFillMethod method_;
  int memfd_;
  Mapping zeros_;
};

}  // namespace hvmm::vmm
