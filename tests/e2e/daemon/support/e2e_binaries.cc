// Paths of this build's programs and the reason the end-to-end tests cannot run (e2e_binaries.h).
#include "e2e_binaries.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hvmm::e2e {

const Binaries& binaries() {
  static const Binaries paths{HVMM_E2E_HVMMD, HVMM_E2E_HVMM_VM, HVMM_E2E_HVMM_CLIENT,
                              HVMM_E2E_HVMM};
  return paths;
}

namespace {

// Why `path` (the program `what`) cannot be run ("" when it can).
std::string missing(const std::string& what, const std::string& path) {
  if (path.empty()) {
    return what + " is not part of this build";
  }
  if (::access(path.c_str(), X_OK) != 0) {
    return what + " cannot be run: " + path + ": " + std::strerror(errno);
  }
  return "";
}

}  // namespace

std::string unavailable_reason() {
  const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return std::string("/dev/kvm cannot be opened: ") + std::strerror(errno) +
           " (the nested-KVM stage runs these tests)";
  }
  ::close(fd);
  const Binaries& paths = binaries();
  for (const auto& [what, path] :
       {std::pair{"hvmmd", paths.hvmmd}, std::pair{"hvmm-vm", paths.hvmm_vm},
        std::pair{"hvmm-client", paths.hvmm_client}, std::pair{"hvmm", paths.hvmm}}) {
    std::string reason = missing(what, path);
    if (!reason.empty()) {
      return reason;
    }
  }
  return "";
}

}  // namespace hvmm::e2e
