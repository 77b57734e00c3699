// RAII owners of descriptors and mappings.
#include "hvmm/vmm/host/unique_fd.h"

#include <sys/mman.h>
#include <unistd.h>

namespace hvmm::vmm {

// Close the owned descriptor (ignoring EINTR: Linux always releases it) and take `fd`.
void UniqueFd::reset(int fd) {
  if (fd_ >= 0) {
    ::close(fd_);
  }
  fd_ = fd;
}

// Unmap the owned region, if any.
void Mapping::reset() {
  if (address_ != nullptr) {
    ::munmap(address_, size_);
  }
  address_ = nullptr;
  size_ = 0;
}

}  // namespace hvmm::vmm
