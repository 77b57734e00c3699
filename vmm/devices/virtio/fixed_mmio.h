// The MMIO every hvmm x86 machine has besides its virtio windows: KVM's in-kernel IOAPIC and
// LAPIC, and the pages KVM keeps for its identity map and TSS. The virtio-mmio windows keep
// clear of them (mmio_layout.cc); stage-2 dumps list them as device regions.
#pragma once

#include "hvmm/base/address.h"

namespace hvmm::vmm::virtio {

// FixedMmio is one such region and its name.
struct FixedMmio {
  IpaRange range;
  const char* name;
};

// In address order.
inline constexpr FixedMmio kFixedMmio[] = {
    {{Ipa(0xfec00000), 0x1000}, "IOAPIC"},
    {{Ipa(0xfee00000), 0x1000}, "LAPIC"},
    {{Ipa(0xfffbc000), 0x4000}, "KVM identity map and TSS"},
};

}  // namespace hvmm::vmm::virtio
