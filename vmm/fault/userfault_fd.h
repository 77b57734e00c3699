// Userfaultfd: an owned userfaultfd with the features the fault handler needs.
//
// open() makes the descriptor (the userfaultfd(2) system call with O_CLOEXEC|O_NONBLOCK, or
// /dev/userfaultfd's USERFAULTFD_IOC_NEW where the system call is refused, e.g. with
// vm.unprivileged_userfaultfd=0 and no CAP_SYS_PTRACE) and negotiates the API with
// UFFD_FEATURE_THREAD_ID (each fault names its thread) and UFFD_FEATURE_EVENT_REMOVE
// (madvise(MADV_REMOVE/DONTNEED) on a registered range is reported), and checks that
// MISSING faults on shmem (UFFD_FEATURE_MISSING_SHMEM) are available. A missing feature is
// an error that names it. UFFD_USER_MODE_ONLY is never set: KVM's accesses to guest memory
// are kernel-mode faults and must reach the handler.
//
// The fill operations work on page-aligned ranges of a registered mapping and report how
// far they got, so a caller can step over a page another path filled first (EEXIST).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include <linux/userfaultfd.h>

#include "hvmm/base/result.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm {

// How far a fill got: `done` bytes from the start were filled; when `done` is short of the
// length, `error` is the errno of the page at start + done (EEXIST: it was already there).
struct FillProgress {
  uint64_t done = 0;
  int error = 0;
};

class Userfaultfd {
 public:
  // Features the handler cannot work without, and the optional ones it uses when offered.
  static constexpr uint64_t kRequiredFeatures =
      UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_MISSING_SHMEM;

  // Open and negotiate (see the file comment). Errors name the missing feature or syscall.
  static Result<Userfaultfd> open();

  int fd() const { return fd_.get(); }
  // Every feature the kernel offered (a superset of kRequiredFeatures).
  uint64_t features() const { return features_; }

  // Register [address, address + length) for MISSING faults (and WP when `write_protect`),
  // and check that the kernel offers UFFDIO_ZEROPAGE, UFFDIO_COPY and UFFDIO_WAKE on it.
  Result<void> register_range(uint8_t* address, uint64_t length, bool write_protect = false);
  // Unregister a range registered before (also implicit when the descriptor closes).
  Result<void> unregister_range(uint8_t* address, uint64_t length);

  // Map zero pages over [address, address + length) (UFFDIO_ZEROPAGE), waking the waiters
  // of what was filled unless `wake` is false.
  FillProgress zero_range(uint8_t* address, uint64_t length, bool wake = true);
  // Copy `source` (length bytes) to [address, address + length) (UFFDIO_COPY).
  FillProgress copy_range(uint8_t* address, const uint8_t* source, uint64_t length,
                          bool wake = true);
  // Wake the threads waiting on [address, address + length) (UFFDIO_WAKE).
  Result<void> wake(uint8_t* address, uint64_t length);
  // Lift write protection over [address, address + length) and wake (UFFDIO_WRITEPROTECT).
  Result<void> unprotect(uint8_t* address, uint64_t length);
  // Write-protect [address, address + length) (a range registered with write_protect).
  Result<void> protect(uint8_t* address, uint64_t length);

  // Read the pending messages into `out` without blocking; the count read (0: none).
  Result<size_t> read_messages(std::span<uffd_msg> out);

 private:
  Userfaultfd(UniqueFd fd, uint64_t features) : fd_(std::move(fd)), features_(features) {}

  UniqueFd fd_;
  uint64_t features_ = 0;
};

// The name of each feature bit of `missing` ("UFFD_FEATURE_THREAD_ID, ..."), for messages.
std::string userfaultfd_feature_names(uint64_t missing);

}  // namespace hvmm::vmm
