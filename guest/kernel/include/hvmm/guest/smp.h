// Multiprocessor bring-up (INIT/SIPI with a 16-bit trampoline) and running work on other
// CPUs.
#pragma once

#include <cstdint>

#include "hvmm/guest/boot_info.h"

namespace hvmm::guest {

// CPUs the kernel expects (boot CPU included); fixed before the first AP starts.
unsigned possible_cpus();

// Find the CPUs (ACPI MADT, else CPUID leaf 1, capped by `nr_cpus=`), start every AP and
// wait for each to come online. Needs memory_init() and the boot CPU's APIC.
void smp_init(const BootInfo& info);

// A function run on another CPU in its idle loop (thread context, interrupts enabled).
using CpuWork = void (*)(void* arg);

// Post `fn(arg)` to idle CPU `cpu` and wake it. Returns false if the CPU is offline or busy.
bool smp_call_async(unsigned cpu, CpuWork fn, void* arg);

// Wait until the work posted to `cpu` has finished.
void smp_wait(unsigned cpu);

// Allocate the kernel stack of `cpu` from vmalloc (a guard page below it); returns its top.
uint64_t alloc_guarded_stack(unsigned cpu);

// The x2APIC id of CPU `cpu`.
uint32_t cpu_apic_id(unsigned cpu);

}  // namespace hvmm::guest
