// The memfd backing of guest RAM.
#include "hvmm/vmm/memory/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hvmm::vmm {

// Create and map the memfd without touching it (MAP_NORESERVE: RAM is overcommitted).
Result<std::unique_ptr<GuestMemory>> GuestMemory::create(uint64_t size, const std::string& name) {
  if (size == 0 || !is_aligned(size, kPageSize)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "guest memory size {:#x} must be a non-zero multiple of 4 KiB", size);
  }
  int fd = ::memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) {
    return make_error(ErrorCode::kInternal, "memfd_create({}) failed: {}", name,
                      std::strerror(errno));
  }
  UniqueFd owned(fd);
  if (::ftruncate(fd, static_cast<off_t>(size)) < 0) {
    return make_error(ErrorCode::kResourceExhausted, "cannot size guest memory to {:#x}: {}", size,
                      std::strerror(errno));
  }
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (base == MAP_FAILED) {
    return make_error(ErrorCode::kResourceExhausted, "cannot map {:#x} bytes of guest memory: {}",
                      size, std::strerror(errno));
  }
  return std::make_unique<GuestMemory>(std::move(owned), Mapping(base, size));
}

// Bounds-check [offset, offset + length) against the backing.
Result<uint8_t*> GuestMemory::host_pointer(HostOffset offset, uint64_t length) const {
  uint64_t start = offset.value();
  if (start > size() || length > size() - start) {
    return make_error(ErrorCode::kOutOfRange,
                      "host range [{:#x}, {:#x}) is outside the {:#x}-byte guest backing", start,
                      start + length, size());
  }
  return mapping_.data() + start;
}

// Punch the pages out of the memfd so their memory returns to the host.
Result<void> GuestMemory::release(HostOffset offset, uint64_t length) {
  if (!offset.is_aligned(kPageSize) || !is_aligned(length, kPageSize)) {
    return make_error(ErrorCode::kInvalidArgument, "release of [{:#x}, {:#x}) is not page aligned",
                      offset.value(), offset.value() + length);
  }
  auto pointer = host_pointer(offset, length);
  HVMM_TRY(pointer);
  if (length != 0 && ::madvise(*pointer, length, MADV_REMOVE) < 0) {
    return make_error(ErrorCode::kInternal, "MADV_REMOVE of [{:#x}, {:#x}) failed: {}",
                      offset.value(), offset.value() + length, std::strerror(errno));
  }
  return Ok();
}

}  // namespace hvmm::vmm
