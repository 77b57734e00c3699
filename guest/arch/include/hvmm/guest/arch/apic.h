// The local APIC: EOI, IPIs, INIT/SIPI and the timer, in x2APIC mode (MSRs) when offered,
// else in xAPIC mode (MMIO). x2APIC is preferred for IPIs: the xAPIC MMIO ICR with a
// physical destination is not delivered by this machine's hypervisor.
#pragma once

#include <cstdint>

namespace hvmm::guest::arch {

// True if CPUID offers x2APIC.
bool x2apic_supported();

// The physical address of the xAPIC register page.
inline constexpr uint64_t kXapicPhys = 0xfee00000;

// True if an APIC can be used: x2APIC, or an xAPIC whose page was given to apic_set_mmio().
bool apic_available();

// Tell the driver where the xAPIC page is mapped (uncached), for CPUs without x2APIC.
void apic_set_mmio(void* va);

// Enable the local APIC on the calling CPU (x2APIC mode when offered), software-enabled with
// the spurious vector. Returns false (APIC untouched) when no APIC is available.
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
