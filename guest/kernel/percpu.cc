// Per-CPU blocks and the online count.
#include "hvmm/guest/percpu.h"

#include "hvmm/guest/arch/cpu.h"

namespace hvmm::guest {
namespace {

PerCpu g_percpu[kMaxCpus];
volatile unsigned g_online = 0;

}  // namespace

// Block of one CPU.
PerCpu& cpu_data(unsigned cpu) {
  return g_percpu[cpu];
}

// CPUs that finished bring-up.
unsigned online_cpus() {
  return __atomic_load_n(&g_online, __ATOMIC_ACQUIRE);
}

// Publish `cpu` as online.
void set_cpu_online(unsigned cpu) {
  g_percpu[cpu].online = 1;
  __atomic_fetch_add(&g_online, 1, __ATOMIC_RELEASE);
}

// Load GS base with the CPU's block (the GS selector is null, so only the MSR matters).
// KERNEL_GS_BASE gets the same value: this machine's hypervisor swaps it in on `syscall`
// (as SWAPGS would), and with both equal the kernel never needs SWAPGS.
void percpu_install(unsigned cpu) {
  PerCpu& p = g_percpu[cpu];
  p.self = &p;
  p.cpu = cpu;
  arch::wrmsr(arch::kMsrGsBase, reinterpret_cast<uint64_t>(&p));
  arch::wrmsr(arch::kMsrKernelGsBase, reinterpret_cast<uint64_t>(&p));
}

}  // namespace hvmm::guest
