// Userfaultfd: open, negotiate, register, fill and wake.
#include "hvmm/vmm/fault/userfault_fd.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace hvmm::vmm {
namespace {

// Optional features requested when the kernel offers them: WP faults on shmem.
constexpr uint64_t kOptionalFeatures =
    UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;

// The ioctls a registered range must offer for the handler to resolve faults on it.
constexpr uint64_t kRequiredIoctls = (uint64_t{1} << _UFFDIO_ZEROPAGE) |
                                     (uint64_t{1} << _UFFDIO_COPY) | (uint64_t{1} << _UFFDIO_WAKE);

// A new raw userfaultfd: the system call first, then /dev/userfaultfd.
Result<UniqueFd> open_raw() {
  const int flags = O_CLOEXEC | O_NONBLOCK;
  const int fd = static_cast<int>(::syscall(SYS_userfaultfd, flags));
  if (fd >= 0) {
    return UniqueFd(fd);
  }
  const int syscall_errno = errno;
  UniqueFd device(::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
  if (!device.valid()) {
    return make_error(ErrorCode::kUnavailable,
                      "userfaultfd unavailable: userfaultfd(2) failed ({}) and /dev/userfaultfd "
                      "cannot be opened ({}); set vm.unprivileged_userfaultfd=1 or give access "
                      "to /dev/userfaultfd",
                      std::strerror(syscall_errno), std::strerror(errno));
  }
  const int made = ::ioctl(device.get(), USERFAULTFD_IOC_NEW, flags);
  if (made < 0) {
    return make_error(ErrorCode::kUnavailable,
                      "userfaultfd unavailable: userfaultfd(2) failed ({}) and "
                      "/dev/userfaultfd USERFAULTFD_IOC_NEW failed ({})",
                      std::strerror(syscall_errno), std::strerror(errno));
  }
  return UniqueFd(made);
}

// UFFDIO_API on `fd` asking for `features`; returns what the kernel then reports.
Result<uint64_t> negotiate(int fd, uint64_t features) {
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  if (::ioctl(fd, UFFDIO_API, &api) != 0) {
    return make_error(ErrorCode::kUnavailable, "userfaultfd UFFDIO_API (features {:#x}) failed: {}",
                      features, std::strerror(errno));
  }
  return static_cast<uint64_t>(api.features);
}

// Progress of a UFFDIO_ZEROPAGE/UFFDIO_COPY whose result field is `result` (bytes done, or a
// negative errno) after the ioctl returned `rc` with errno `error`.
FillProgress fill_progress(int rc, int error, int64_t result, uint64_t length) {
  if (rc == 0) {
    return FillProgress{length, 0};
  }
  if (result > 0) {
    // Part done; the ioctl says EAGAIN, the page at the stop is the next call's to name.
    return FillProgress{static_cast<uint64_t>(result), EAGAIN};
  }
  return FillProgress{0, result < 0 ? static_cast<int>(-result) : error};
}

// UFFDIO_WRITEPROTECT with or without MODE_WP.
Result<void> write_protect(int fd, uint8_t* address, uint64_t length, bool protect) {
  uffdio_writeprotect request{};
  request.range.start = reinterpret_cast<uint64_t>(address);
  request.range.len = length;
  request.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
  if (::ioctl(fd, UFFDIO_WRITEPROTECT, &request) != 0) {
    return make_error(ErrorCode::kInternal, "userfaultfd cannot {} [{:#x}, {:#x}): {}",
                      protect ? "write-protect" : "unprotect", request.range.start,
                      request.range.start + length, std::strerror(errno));
  }
  return Ok();
}

}  // namespace

// One name per bit, for error messages.
std::string userfaultfd_feature_names(uint64_t missing) {
  static constexpr std::array<std::pair<uint64_t, const char*>, 5> kNames = {{
      {UFFD_FEATURE_THREAD_ID, "UFFD_FEATURE_THREAD_ID"},
      {UFFD_FEATURE_EVENT_REMOVE, "UFFD_FEATURE_EVENT_REMOVE"},
      {UFFD_FEATURE_MISSING_SHMEM, "UFFD_FEATURE_MISSING_SHMEM"},
      {UFFD_FEATURE_PAGEFAULT_FLAG_WP, "UFFD_FEATURE_PAGEFAULT_FLAG_WP"},
      {UFFD_FEATURE_WP_HUGETLBFS_SHMEM, "UFFD_FEATURE_WP_HUGETLBFS_SHMEM"},
  }};
  std::string names;
  for (const auto& [bit, name] : kNames) {
    if ((missing & bit) != 0) {
      names += names.empty() ? name : fmt::format(", {}", name);
    }
  }
  return names.empty() ? fmt::format("{:#x}", missing) : names;
}

// Probe the offered features on a throw-away descriptor (UFFDIO_API works once per
// descriptor), then open the real one asking for the required and the offered optional ones.
Result<Userfaultfd> Userfaultfd::open() {
  auto probe = open_raw();
  HVMM_TRY(probe);
  auto offered = negotiate(probe->get(), 0);
  HVMM_TRY(offered);
  const uint64_t missing = kRequiredFeatures & ~*offered;
  if (missing != 0) {
    return make_error(ErrorCode::kUnavailable,
                      "userfaultfd lacks {} (the kernel offers features {:#x})",
                      userfaultfd_feature_names(missing), *offered);
  }
  auto fd = open_raw();
  HVMM_TRY(fd);
  auto features = negotiate(fd->get(), kRequiredFeatures | (*offered & kOptionalFeatures));
  HVMM_TRY(features);
  return Userfaultfd(std::move(*fd), *features);
}

// UFFDIO_REGISTER, then check the ioctls offered on the range.
Result<void> Userfaultfd::register_range(uint8_t* address, uint64_t length, bool write_protect) {
  uffdio_register request{};
  request.range.start = reinterpret_cast<uint64_t>(address);
  request.range.len = length;
  request.mode = UFFDIO_REGISTER_MODE_MISSING | (write_protect ? UFFDIO_REGISTER_MODE_WP : 0);
  if (::ioctl(fd_.get(), UFFDIO_REGISTER, &request) != 0) {
    return make_error(ErrorCode::kUnavailable,
                      "userfaultfd cannot register [{:#x}, {:#x}) for MISSING{} faults: {}",
                      request.range.start, request.range.start + length, write_protect ? "+WP" : "",
                      std::strerror(errno));
  }
  if ((request.ioctls & kRequiredIoctls) != kRequiredIoctls) {
    return make_error(ErrorCode::kUnavailable,
                      "userfaultfd range [{:#x}, {:#x}) offers ioctls {:#x}, without "
                      "UFFDIO_ZEROPAGE/COPY/WAKE",
                      request.range.start, request.range.start + length,
                      static_cast<uint64_t>(request.ioctls));
  }
  return Ok();
}

// UFFDIO_UNREGISTER.
Result<void> Userfaultfd::unregister_range(uint8_t* address, uint64_t length) {
  uffdio_range range{reinterpret_cast<uint64_t>(address), length};
  if (::ioctl(fd_.get(), UFFDIO_UNREGISTER, &range) != 0) {
    return make_error(ErrorCode::kInternal, "userfaultfd cannot unregister [{:#x}, {:#x}): {}",
                      range.start, range.start + length, std::strerror(errno));
  }
  return Ok();
}

// UFFDIO_ZEROPAGE: the kernel stops at the first page it cannot fill.
FillProgress Userfaultfd::zero_range(uint8_t* address, uint64_t length, bool wake) {
  uffdio_zeropage request{};
  request.range.start = reinterpret_cast<uint64_t>(address);
  request.range.len = length;
  request.mode = wake ? 0 : UFFDIO_ZEROPAGE_MODE_DONTWAKE;
  const int rc = ::ioctl(fd_.get(), UFFDIO_ZEROPAGE, &request);
  return fill_progress(rc, errno, request.zeropage, length);
}

// UFFDIO_COPY: the kernel stops at the first page it cannot fill.
FillProgress Userfaultfd::copy_range(uint8_t* address, const uint8_t* source, uint64_t length,
                                     bool wake) {
  uffdio_copy request{};
  request.dst = reinterpret_cast<uint64_t>(address);
  request.src = reinterpret_cast<uint64_t>(source);
  request.len = length;
  request.mode = wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE;
  const int rc = ::ioctl(fd_.get(), UFFDIO_COPY, &request);
  return fill_progress(rc, errno, request.copy, length);
}

// UFFDIO_WAKE.
Result<void> Userfaultfd::wake(uint8_t* address, uint64_t length) {
  uffdio_range range{reinterpret_cast<uint64_t>(address), length};
  if (::ioctl(fd_.get(), UFFDIO_WAKE, &range) != 0) {
    return make_error(ErrorCode::kInternal, "userfaultfd cannot wake [{:#x}, {:#x}): {}",
                      range.start, range.start + length, std::strerror(errno));
  }
  return Ok();
}

// Clearing WP also wakes the writers waiting on the range.
Result<void> Userfaultfd::unprotect(uint8_t* address, uint64_t length) {
  return write_protect(fd_.get(), address, length, false);
}

// Set WP on present pages of a WP-registered range.
Result<void> Userfaultfd::protect(uint8_t* address, uint64_t length) {
  return write_protect(fd_.get(), address, length, true);
}

// read() of whole messages; EAGAIN means none are pending.
Result<size_t> Userfaultfd::read_messages(std::span<uffd_msg> out) {
  const ssize_t n = ::read(fd_.get(), out.data(), out.size_bytes());
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) {
      return size_t{0};
    }
    return make_error(ErrorCode::kInternal, "userfaultfd read failed: {}", std::strerror(errno));
  }
  return static_cast<size_t>(n) / sizeof(uffd_msg);
}

}  // namespace hvmm::vmm
