// ZeroFiller: UFFDIO_ZEROPAGE, UFFDIO_COPY or fallocate, each with EEXIST stepped over.
#include "hvmm/vmm/fault/zero_fill.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

namespace hvmm::vmm {
namespace {

// How often a fill may be told EAGAIN with no progress (the mm is changing under it: an
// EVENT_REMOVE is being delivered) before the fault is failed.
constexpr unsigned kMaxStalls = 1000;

}  // namespace

// Names used by the benchmark and the README.
const char* zero_fill_method_name(ZeroFillMethod method) {
  switch (method) {
    case ZeroFillMethod::kZeroPage:
      return "zeropage";
    case ZeroFillMethod::kCopy:
      return "copy";
    case ZeroFillMethod::kFallocate:
      return "fallocate";
  }
  return "fill-unknown";
}

// Map the zero buffer only for kCopy: nothing ever writes it, so it costs no memory.
Result<ZeroFiller> ZeroFiller::create(ZeroFillMethod method, int memfd, uint64_t max_run) {
  Mapping zeros;
  if (method == ZeroFillMethod::kCopy) {
    void* address = ::mmap(nullptr, max_run, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (address == MAP_FAILED) {
      return make_error(ErrorCode::kResourceExhausted, "cannot map a {}-byte zero buffer: {}",
                        max_run, std::strerror(errno));
    }
    zeros = Mapping(address, max_run);
  }
  if (method == ZeroFillMethod::kFallocate && memfd < 0) {
    return make_error(ErrorCode::kInvalidArgument, "fallocate zero fill needs the memfd");
  }
  return ZeroFiller(method, memfd, std::move(zeros));
}

// Dispatch on the method.
Result<ZeroFillOutcome> ZeroFiller::fill(Userfaultfd& uffd, uint8_t* host, HostOffset offset,
                                         uint64_t length) const {
  if (method_ == ZeroFillMethod::kFallocate) {
    return fill_by_fallocate(uffd, host, offset, length);
  }
  return fill_by_ioctl(uffd, host, length);
}

// UFFDIO calls until the end; see the header.
Result<ZeroFillOutcome> fill_stepping_over_existing(
    Userfaultfd& uffd, uint8_t* host, uint64_t length, std::string_view what,
    const std::function<FillProgress(uint64_t at)>& fill) {
  ZeroFillOutcome outcome;
  uint64_t at = 0;
  unsigned stalls = 0;
  while (at < length) {
    const FillProgress progress = fill(at);
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
                        "userfaultfd {} of [{:#x}, {:#x}) failed at {:#x}: {}", what,
                        reinterpret_cast<uint64_t>(host), reinterpret_cast<uint64_t>(host + length),
                        reinterpret_cast<uint64_t>(host + at), std::strerror(progress.error));
    } else if (progress.done == 0 && ++stalls > kMaxStalls) {
      return make_error(
          ErrorCode::kInternal, "userfaultfd {} of [{:#x}, {:#x}) kept failing with EAGAIN", what,
          reinterpret_cast<uint64_t>(host), reinterpret_cast<uint64_t>(host + length));
    }
  }
  if (outcome.pages_existing > 0) {
    HVMM_TRY(uffd.wake(host, length));
  }
  return outcome;
}

// UFFDIO_ZEROPAGE, or UFFDIO_COPY from the zero buffer, over the run.
Result<ZeroFillOutcome> ZeroFiller::fill_by_ioctl(Userfaultfd& uffd, uint8_t* host,
                                                  uint64_t length) const {
  return fill_stepping_over_existing(
      uffd, host, length, zero_fill_method_name(method_), [&](uint64_t at) {
        return method_ == ZeroFillMethod::kZeroPage
                   ? uffd.zero_range(host + at, length - at)
                   : uffd.copy_range(host + at, zeros_.data(), length - at);
      });
}

// Allocate the blocks (pages already there are kept as they are), then wake the run: the
// woken threads' retried faults find the pages in the page cache and the kernel maps them.
Result<ZeroFillOutcome> ZeroFiller::fill_by_fallocate(Userfaultfd& uffd, uint8_t* host,
                                                      HostOffset offset, uint64_t length) const {
  if (::fallocate(memfd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset.value()),
                  static_cast<off_t>(length)) != 0) {
    return make_error(ErrorCode::kResourceExhausted, "fallocate of memfd [{:#x}, {:#x}) failed: {}",
                      offset.value(), offset.value() + length, std::strerror(errno));
  }
  HVMM_TRY(uffd.wake(host, length));
  return ZeroFillOutcome{length / kPageSize, 0};
}

}  // namespace hvmm::vmm
