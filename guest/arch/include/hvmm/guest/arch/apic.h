// The local APIC in x2APIC mode (MSR interface): EOI, IPIs, INIT/SIPI and the timer.
// x2APIC is used for IPIs because the xAPIC MMIO ICR with a physical destination is not
// delivered by this machine's hypervisor.
#pragma once

#include <cstdint>

namespace hvmm::guest::arch {

// True if CPUID offers x2APIC.
bool x2apic_supported();

// Enable the local APIC in x2APIC mode on the calling CPU, software-enabled with the
// spurious vector. Returns false (APIC untouched) without x2APIC.
bool apic_init_this_cpu();

// The calling CPU's x2APIC id.
uint32_t apic_id();

// Signal end of interrupt.
void apic_eoi();

// Send a fixed interrupt `vector` to the CPU with x2APIC id `dest`.
void apic_send_ipi(uint32_t dest, uint8_t vector);

// Send INIT to `dest` (it parks waiting for SIPI).
void apic_send_init(uint32_t dest);

// Send a startup IPI: `dest` starts in real mode at physical page `page` (page << 12).
void apic_send_sipi(uint32_t dest, uint8_t page);

// Start the timer in periodic mode, firing `vector` every `count` APIC ticks (divide by 1).
void apic_timer_start_periodic(uint8_t vector, uint32_t count);

// Stop the timer.
void apic_timer_stop();

}  // namespace hvmm::guest::arch
