// Time from the TSC: its frequency (from CPUID) and the boot-time stamps.
#pragma once

#include <cstdint>

namespace hvmm::guest {

// Find the TSC frequency: CPUID 0x15, 0x16, the hypervisor leaf 0x40000010, then KVM's
// paravirtual clock; otherwise assume 1 GHz (reported as assumed).
void time_init();

// TSC ticks per second.
uint64_t tsc_hz();

// True if tsc_hz() came from CPUID rather than an assumption.
bool tsc_hz_known();

// Convert TSC ticks to microseconds.
uint64_t tsc_to_us(uint64_t ticks);

// Convert TSC ticks to nanoseconds (exact for any uptime: whole seconds and the remainder
// are converted apart, so nothing overflows).
uint64_t tsc_to_ns(uint64_t ticks);

// The TSC read by the first instruction of the PVH entry.
uint64_t boot_entry_tsc();

}  // namespace hvmm::guest
