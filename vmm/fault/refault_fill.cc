// RefaultFiller: load a reclaimed run into a bounce buffer, then UFFDIO_COPY it whole.
#include "hvmm/vmm/fault/refault_fill.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

namespace hvmm::vmm {
namespace {

// How often a copy may be told EAGAIN with no progress before the fault is failed (as the
// zero fill: the mm is changing under it).
constexpr unsigned kMaxStalls = 1000;

}  // namespace

// Round down to a power of two, never below one page.
uint64_t reclaimed_cluster_size(uint64_t cluster) {
  return cluster < kPageSize ? kPageSize : std::bit_floor(cluster);
}

// Clip `run` to the cluster-aligned window around `ipa`.
IpaRange reclaimed_cluster(IpaRange run, Ipa ipa, uint64_t cluster) {
  const uint64_t size = reclaimed_cluster_size(cluster);
  const Ipa window = ipa.align_down(size);
  const Ipa start = std::max(run.start, window);
  const Ipa end = std::min(run.end(), window + size);
  return IpaRange{start, end - start};
}

// A private anonymous mapping: page aligned, as UFFDIO_COPY's source is read page by page.
Result<RefaultFiller> RefaultFiller::create(uint64_t max_run) {
  const uint64_t size = align_up(std::max(max_run, kPageSize), kPageSize);
  void* address = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (address == MAP_FAILED) {
    return make_error(ErrorCode::kResourceExhausted, "cannot map a {}-byte refault buffer: {}",
                      size, std::strerror(errno));
  }
  return RefaultFiller(Mapping(address, size));
}

// Load all, then copy all: a load error copies nothing.
Result<ZeroFillOutcome> RefaultFiller::fill(Userfaultfd& uffd, ReclaimedPages& pages, IpaRange run,
                                            uint8_t* host) {
  if (run.size > bounce_.size() || !is_aligned(run.size, kPageSize)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "refault of {}: not whole pages, or more than the {}-byte buffer", run,
                      bounce_.size());
  }
  HVMM_TRY(load(pages, run));
  return copy(uffd, host, run.size);
}

// One load per page into its slot of the bounce buffer.
Result<void> RefaultFiller::load(ReclaimedPages& pages, IpaRange run) {
  for (uint64_t at = 0; at < run.size; at += kPageSize) {
    std::span<uint8_t, kPageSize> slot(bounce_.data() + at, kPageSize);
    if (Result<void> loaded = pages.load(run.start + at, slot); !loaded.ok()) {
      return make_error(loaded.error().code, "cannot load reclaimed page at IPA {:#x}: {}",
                        (run.start + at).value(), loaded.error().message);
    }
  }
  return Ok();
}

// UFFDIO_COPY until the end, stepping over existing pages; wake the run when one existed
// (the kernel woke only what it copied, and the faulting page may be the existing one).
Result<ZeroFillOutcome> RefaultFiller::copy(Userfaultfd& uffd, uint8_t* host, uint64_t length) {
  ZeroFillOutcome outcome;
  uint64_t at = 0;
  unsigned stalls = 0;
  while (at < length) {
    const FillProgress progress = uffd.copy_range(host + at, bounce_.data() + at, length - at);
    at += progress.done;
    outcome.pages_filled += progress.done / kPageSize;
    if (progress.error == 0 || at >= length) {
      break;
    }
    if (progress.error == EEXIST) {
      ++outcome.pages_existing;
      at += kPageSize;
    } else if (progress.error != EAGAIN) {
      return make_error(ErrorCode::kInternal,
                        "userfaultfd copy of [{:#x}, {:#x}) failed at {:#x}: {}",
                        reinterpret_cast<uint64_t>(host), reinterpret_cast<uint64_t>(host + length),
                        reinterpret_cast<uint64_t>(host + at), std::strerror(progress.error));
    } else if (progress.done == 0 && ++stalls > kMaxStalls) {
      return make_error(
          ErrorCode::kInternal, "userfaultfd copy of [{:#x}, {:#x}) kept failing with EAGAIN",
          reinterpret_cast<uint64_t>(host), reinterpret_cast<uint64_t>(host + length));
    }
  }
  if (outcome.pages_existing > 0) {
    HVMM_TRY(uffd.wake(host, length));
  }
  return outcome;
}

}  // namespace hvmm::vmm
