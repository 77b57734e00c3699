// The IOAPIC at 0xfec00000 (Intel 82093AA datasheet): one redirection entry per input pin,
// which is the GSI of a device IRQ (KVM's in-kernel IOAPIC and QEMU's both have 24 pins).
#pragma once

#include <cstdint>

namespace hvmm::guest {

// The IOAPIC's physical register window.
inline constexpr uint64_t kIoapicPhys = 0xfec00000;

// Map the IOAPIC uncached and read how many pins it has; mask nothing, change nothing.
// False (said on the console) when no IOAPIC answers (version register all ones or zero).
bool ioapic_init();

// Pins of the IOAPIC (0 before ioapic_init() or without one).
unsigned ioapic_pins();

// Route pin `irq`: edge-triggered, active high, fixed delivery of `vector` to the CPU with
// APIC id `apic_id` (physical destination), unmasked. False if there is no such pin.
bool ioapic_route(uint32_t irq, uint8_t vector, uint32_t apic_id);

// Mask pin `irq` (no-op without it).
void ioapic_mask(uint32_t irq);

}  // namespace hvmm::guest
