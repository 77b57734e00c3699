// The periodic LAPIC timer and its tick counter.
#pragma once

#include <cstdint>

namespace hvmm::guest {

inline constexpr uint32_t kTimerHz = 100;

// Enable the APIC on the calling CPU and start its periodic timer (boot CPU only: APs
// idle in hlt and need no tick). Returns false without x2APIC.
bool timer_init();

// True once timer_init() started the timer.
bool timer_running();

// Ticks seen on the boot CPU.
uint64_t timer_ticks();

}  // namespace hvmm::guest
