// The Error a failed KVM ioctl becomes (shared by the files of vmm/kvm).
#pragma once

#include <cerrno>
#include <cstring>

#include "hvmm/base/result.h"

namespace hvmm::vmm {

// Turn a failed ioctl (errno set) into an Error naming it.
inline Error ioctl_error(const char* what) {
  int error = errno;
  return make_error(
      error == EPERM || error == EACCES ? ErrorCode::kPermissionDenied : ErrorCode::kInternal,
      "{} failed: {}", what, std::strerror(error));
}

}  // namespace hvmm::vmm
