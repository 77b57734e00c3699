// GuestAccess: how VMM-side code reads and writes guest-physical memory.
//
// Every access goes through the VM's stage-2 translation and is bounds-checked; an access to
// an IPA that is not RAM fails with an Error naming the IPA. The loader, the boot data
// writer and devices depend only on this interface, so they are testable without KVM.
#pragma once

#include <cstdint>
#include <span>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"

namespace hvmm::vmm {

class GuestAccess {
 public:
  virtual ~GuestAccess() = default;
  // Copy guest memory at [ipa, ipa + out.size()) into `out`.
  virtual Result<void> read(Ipa ipa, std::span<uint8_t> out) = 0;
  // Copy `data` into guest memory at [ipa, ipa + data.size()).
  virtual Result<void> write(Ipa ipa, std::span<const uint8_t> data) = 0;
};

}  // namespace hvmm::vmm
