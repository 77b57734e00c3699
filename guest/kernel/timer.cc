// LAPIC timer at kTimerHz. The APIC timer of KVM's in-kernel LAPIC counts at 1 GHz with
// divide-by-1; the count comes from CPUID 0x15 ECX (core crystal) when present.
#include "hvmm/guest/timer.h"

#include "hvmm/guest/arch/apic.h"
#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/arch/trap.h"
#include "hvmm/guest/percpu.h"

namespace hvmm::guest {
namespace {

volatile uint64_t g_ticks;
bool g_running = false;

// One tick: count and acknowledge.
void timer_interrupt(TrapFrame&) {
  __atomic_fetch_add(&g_ticks, 1, __ATOMIC_RELAXED);
  ++this_cpu().timer_ticks;
  arch::apic_eoi();
}

// The APIC timer input frequency.
uint64_t apic_timer_hz() {
  if (arch::cpuid(0).eax >= 0x15) {
    uint32_t crystal = arch::cpuid(0x15).ecx;
    if (crystal != 0)
      return crystal;
  }
  return 1000000000;
}

}  // namespace

// Enable x2APIC mode and start the periodic tick on this CPU.
bool timer_init() {
  if (!arch::apic_init_this_cpu())
    return false;
  arch::set_interrupt_handler(arch::kVectorTimer, timer_interrupt);
  arch::apic_timer_start_periodic(arch::kVectorTimer,
                                  static_cast<uint32_t>(apic_timer_hz() / kTimerHz));
  g_running = true;
  return true;
}

// Whether the tick runs.
bool timer_running() {
  return g_running;
}

// Ticks counted so far.
uint64_t timer_ticks() {
  return __atomic_load_n(&g_ticks, __ATOMIC_RELAXED);
}

}  // namespace hvmm::guest
