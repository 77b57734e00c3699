// RefaultFiller: load a reclaimed run into a bounce buffer, then UFFDIO_COPY it whole.
#include "hvmm/vmm/fault/refault_fill.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

namespace hvmm::vmm {
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

// UFFDIO_COPY from the bounce buffer over the run.
Result<ZeroFillOutcome> RefaultFiller::copy(Userfaultfd& uffd, uint8_t* host, uint64_t length) {
  return fill_stepping_over_existing(uffd, host, length, "copy", [&](uint64_t at) {
    return uffd.copy_range(host + at, bounce_.data() + at, length - at);
  });
}

}  // namespace hvmm::vmm
