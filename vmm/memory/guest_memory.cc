// The memfd backing of guest RAM: creation, its two mappings, release and extent queries.
#include "hvmm/vmm/memory/guest_memory.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace hvmm::vmm {
namespace {

// Map all of `fd` shared, without reserving swap (RAM is overcommitted and filled lazily).
Result<Mapping> map_shared(int fd, uint64_t size, const char* which) {
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (base == MAP_FAILED) {
    return make_error(ErrorCode::kResourceExhausted,
                      "cannot map {:#x} bytes of guest memory ({} mapping): {}", size, which,
                      std::strerror(errno));
  }
  return Mapping(base, size);
}

}  // namespace

// Create the memfd, size it, and map it twice without touching it.
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
  auto primary = map_shared(fd, size, "primary");
  HVMM_TRY(primary);
  auto alias = map_shared(fd, size, "alias");
  HVMM_TRY(alias);
  return std::make_unique<GuestMemory>(std::move(owned), std::move(*primary), std::move(*alias));
}

// Bounds-check [offset, offset + length) against the backing.
Result<void> GuestMemory::check_range(const char* what, HostOffset offset, uint64_t length) const {
  const uint64_t start = offset.value();
  if (start > size() || length > size() - start) {
    return make_error(ErrorCode::kOutOfRange,
                      "{} [{:#x}, {:#x}) is outside the {:#x}-byte guest backing", what, start,
                      start + length, size());
  }
  return Ok();
}

Result<uint8_t*> GuestMemory::host_pointer(HostOffset offset, uint64_t length) const {
  HVMM_TRY(check_range("host range", offset, length));
  return alias_.data() + offset.value();
}

// MADV_DONTNEED, not a punch: only the mapping's entries go, never the contents.
Result<void> GuestMemory::zap_primary(HostOffset offset, uint64_t length) {
  if (!offset.is_aligned(kPageSize) || !is_aligned(length, kPageSize)) {
    return make_error(ErrorCode::kInvalidArgument, "zap of [{:#x}, {:#x}) is not page aligned",
                      offset.value(), offset.value() + length);
  }
  HVMM_TRY(check_range("zap", offset, length));
  if (length != 0 && ::madvise(primary_.data() + offset.value(), length, MADV_DONTNEED) < 0) {
    return make_error(ErrorCode::kInternal, "madvise(MADV_DONTNEED) of [{:#x}, {:#x}) failed: {}",
                      offset.value(), offset.value() + length, std::strerror(errno));
  }
  return Ok();
}

Result<uint8_t*> GuestMemory::guest_pointer(HostOffset offset, uint64_t length) const {
  HVMM_TRY(check_range("host range", offset, length));
  return primary_.data() + offset.value();
}

// Punch the pages out of the memfd. The punch unmaps them from every mapping of the file
// (both of ours), which runs the host kernel's MMU notifiers: KVM drops its own translations
// of the primary mapping there, so no KVM ioctl is needed.
Result<void> GuestMemory::release(HostOffset offset, uint64_t length) {
  if (!offset.is_aligned(kPageSize) || !is_aligned(length, kPageSize)) {
    return make_error(ErrorCode::kInvalidArgument, "release of [{:#x}, {:#x}) is not page aligned",
                      offset.value(), offset.value() + length);
  }
  HVMM_TRY(check_range("release of", offset, length));
  if (length != 0 &&
      ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(offset.value()), static_cast<off_t>(length)) < 0) {
    return make_error(ErrorCode::kInternal, "punching a hole at [{:#x}, {:#x}) failed: {}",
                      offset.value(), offset.value() + length, std::strerror(errno));
  }
  return Ok();
}

// pwrite() until all is written (a short write goes on from where it stopped).
Result<void> GuestMemory::write_at(HostOffset offset, std::span<const uint8_t> data) {
  if (!offset.is_aligned(kPageSize) || !is_aligned(data.size(), kPageSize)) {
    return make_error(ErrorCode::kInvalidArgument, "write of [{:#x}, {:#x}) is not page aligned",
                      offset.value(), offset.value() + data.size());
  }
  HVMM_TRY(check_range("write of", offset, data.size()));
  for (size_t done = 0; done < data.size();) {
    const ssize_t n = ::pwrite(fd_.get(), data.data() + done, data.size() - done,
                               static_cast<off_t>(offset.value() + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      return make_error(ErrorCode::kInternal, "writing the memfd at [{:#x}, {:#x}) failed: {}",
                        offset.value() + done, offset.value() + data.size(),
                        n < 0 ? std::strerror(errno) : "no progress");
    }
    done += static_cast<size_t>(n);
  }
  return Ok();
}

// Alternate SEEK_DATA and SEEK_HOLE from the start; ENXIO from SEEK_DATA means no more data.
Result<std::vector<HostRange>> GuestMemory::allocated_extents() const {
  std::vector<HostRange> extents;
  const auto end = static_cast<off_t>(size());
  for (off_t at = 0; at < end;) {
    const off_t data = ::lseek(fd_.get(), at, SEEK_DATA);
    if (data < 0 && errno == ENXIO)
      break;
    const off_t hole = data < 0 ? -1 : ::lseek(fd_.get(), data, SEEK_HOLE);
    if (data < 0 || hole < 0) {
      return make_error(ErrorCode::kInternal, "SEEK_DATA/SEEK_HOLE of guest memory at {:#x}: {}",
                        static_cast<uint64_t>(at), std::strerror(errno));
    }
    extents.push_back(
        HostRange{HostOffset(static_cast<uint64_t>(data)), static_cast<uint64_t>(hole - data)});
    at = hole;
  }
  return extents;
}

// The next offset at or after `at` where data (`data` true) or a hole begins; SEEK_DATA's ENXIO
// (no data after `at`) is the end of the memfd.
Result<uint64_t> GuestMemory::seek(uint64_t at, bool data) const {
  const off_t found = ::lseek(fd_.get(), static_cast<off_t>(at), data ? SEEK_DATA : SEEK_HOLE);
  if (found >= 0)
    return static_cast<uint64_t>(found);
  if (data && errno == ENXIO)
    return size();
  return make_error(ErrorCode::kInternal, "{} of guest memory at {:#x}: {}",
                    data ? "SEEK_DATA" : "SEEK_HOLE", at, std::strerror(errno));
}

// Walk the extents from the start of `bounds` up to the one holding `page` (a window holds
// at most a few hundred pages, so a few calls), then clip that extent to `bounds`.
Result<MemfdExtent> GuestMemory::extent_around(HostOffset page, HostRange bounds) const {
  if (!bounds.contains(page) || bounds.end().value() > size()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "memfd extent of {:#x} within [{:#x}, {:#x}): outside the range or memory",
                      page.value(), bounds.start.value(), bounds.end().value());
  }
  for (uint64_t at = bounds.start.value();;) {
    auto data = seek(at, true);
    HVMM_TRY(data);
    if (*data > page.value()) {  // [at, data) is a hole holding the page
      const uint64_t end = std::min(*data, bounds.end().value());
      return MemfdExtent{HostRange{HostOffset(at), end - at}, false};
    }
    auto hole = seek(*data, false);
    HVMM_TRY(hole);
    if (*hole > page.value()) {  // [data, hole) is allocated and holds the page
      const uint64_t start = std::max(*data, bounds.start.value());
      const uint64_t end = std::min(*hole, bounds.end().value());
      return MemfdExtent{HostRange{HostOffset(start), end - start}, true};
    }
    at = *hole;
  }
}

Result<uint64_t> GuestMemory::allocated_bytes() const {
  auto extents = allocated_extents();
  HVMM_TRY(extents);
  uint64_t bytes = 0;
  for (const HostRange& extent : *extents)
    bytes += extent.size;
  return bytes;
}

// mincore() reports page-cache residency for a shared file mapping, touched through it or not.
Result<std::vector<bool>> GuestMemory::mincore_pages(bool primary) const {
  std::vector<unsigned char> raw(size() / kPageSize);
  uint8_t* base = primary ? primary_.data() : alias_.data();
  if (::mincore(base, size(), raw.data()) < 0) {
    return make_error(ErrorCode::kInternal, "mincore of guest memory failed: {}",
                      std::strerror(errno));
  }
  std::vector<bool> in_memory(raw.size());
  for (size_t i = 0; i < raw.size(); ++i)
    in_memory[i] = (raw[i] & 1) != 0;
  return in_memory;
}

}  // namespace hvmm::vmm
