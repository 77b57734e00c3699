// Where virtio-mmio devices sit in the guest-physical space and how the guest learns of
// them: one 4 KiB window per device from 0xd0000000 in the MMIO hole, IRQs from 5, announced
// on the kernel command line in the Linux syntax `virtio_mmio.device=4K@0xd0000000:5`.
//
// The windows and IRQs are checked against what else the machine has: the IOAPIC
// (0xfec00000), the LAPIC (0xfee00000), KVM's TSS and identity-map pages (0xfffbc000, four
// pages), COM1's IRQ 4, IRQ 0 (the PIT; Linux also rejects irq 0) and the IOAPIC's 24 pins.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"

namespace hvmm::vmm::virtio {

inline constexpr uint64_t kMmioWindowBase = 0xd0000000;
inline constexpr uint64_t kMmioWindowSize = 0x1000;
inline constexpr uint32_t kFirstIrq = 5;
inline constexpr unsigned kMaxMmioDevices = 8;  // IRQs 5..12

// MmioSlot is where device number `index` lives.
struct MmioSlot {
  IpaRange window;
  uint32_t irq;
};

// The slot of device `index`, checked against the rest of the machine.
Result<MmioSlot> mmio_slot(unsigned index);
// `cmdline` with one `virtio_mmio.device=4K@BASE:IRQ` per slot appended (space separated).
std::string announce_on_cmdline(const std::string& cmdline, const std::vector<MmioSlot>& slots);

}  // namespace hvmm::vmm::virtio
