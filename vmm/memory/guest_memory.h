// GuestMemory: the host backing of one VM's RAM, a memfd mapped shared.
//
// Host offsets (the stage-2 map's output addresses) index this backing. Nothing is touched
// at creation, so the host RSS grows only with what the guest and the VMM use, and
// release() gives pages back for real (MADV_REMOVE punches a hole in the memfd).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm {

class GuestMemory {
 public:
  // Create a memfd of `size` bytes named `name` (shown in /proc/<pid>/maps) and map it.
  static Result<std::unique_ptr<GuestMemory>> create(uint64_t size, const std::string& name);
  // Take ownership of an already sized and mapped memfd (create() is the usual way).
  GuestMemory(UniqueFd fd, Mapping mapping) : fd_(std::move(fd)), mapping_(std::move(mapping)) {}

  uint64_t size() const { return mapping_.size(); }
  int fd() const { return fd_.get(); }
  // Host pointer for [offset, offset + length), or an error when it leaves the backing.
  Result<uint8_t*> host_pointer(HostOffset offset, uint64_t length) const;
  // Drop the contents of [offset, offset + length): the pages read as zero afterwards and
  // no longer count in the host RSS.
  Result<void> release(HostOffset offset, uint64_t length);

 private:
  UniqueFd fd_;
  Mapping mapping_;
};

}  // namespace hvmm::vmm
