// TSC frequency discovery. Calibration against a timer would cost many emulated
// instructions here, so only CPUID is used.
#include "hvmm/guest/time.h"

#include "hvmm/guest/arch/cpu.h"

extern "C" uint64_t boot_entry_tsc;

namespace hvmm::guest {
namespace {

uint64_t g_tsc_hz = 1000000000;
bool g_known = false;
uint64_t g_entry_tsc = 0;

// Frequency from leaf 0x15 (crystal ratio) or 0x16 (base MHz); 0 if absent.
uint64_t tsc_hz_from_cpuid() {
  uint32_t max_leaf = arch::cpuid(0).eax;
  if (max_leaf >= 0x15) {
    arch::CpuidResult r = arch::cpuid(0x15);
    if (r.eax != 0 && r.ebx != 0 && r.ecx != 0)
      return uint64_t{r.ecx} * r.ebx / r.eax;
  }
  if (max_leaf >= 0x16) {
    arch::CpuidResult r = arch::cpuid(0x16);
    if ((r.eax & 0xffff) != 0)
      return uint64_t{r.eax & 0xffff} * 1000000;
  }
  uint32_t hv_max = arch::cpuid(0x40000000).eax;
  if (hv_max >= 0x40000010 && hv_max < 0x40000100) {
    arch::CpuidResult r = arch::cpuid(0x40000010);
    if (r.eax != 0)
      return uint64_t{r.eax} * 1000;
  }
  return 0;
}

// The kvmclock page layout (pvclock_vcpu_time_info, 32 bytes).
struct PvclockTimeInfo {
  uint32_t version;
  uint32_t pad0;
  uint64_t tsc_timestamp;
  uint64_t system_time;
  uint32_t tsc_to_system_mul;
  int8_t tsc_shift;
  uint8_t flags;
  uint8_t pad[2];
};
alignas(64) PvclockTimeInfo g_pvclock;

// Frequency from KVM's paravirtual clock (CPUID 0x40000001 bit 3): the hypervisor writes
// the TSC-to-nanoseconds scale into a page we register with MSR 0x4b564d01; 0 if absent.
uint64_t tsc_hz_from_kvmclock() {
  arch::CpuidResult sig = arch::cpuid(0x40000000);
  if (sig.ebx != 0x4b4d564b || sig.eax < 0x40000001)
    return 0;  // "KVMK"
  if ((arch::cpuid(0x40000001).eax & (1u << 3)) == 0)
    return 0;
  constexpr uint32_t kMsrKvmSystemTimeNew = 0x4b564d01;
  uint64_t pa = reinterpret_cast<uint64_t>(&g_pvclock) - 0xffffffff80000000ull;
  arch::wrmsr(kMsrKvmSystemTimeNew, pa | 1);
  uint32_t mul = __atomic_load_n(&g_pvclock.tsc_to_system_mul, __ATOMIC_ACQUIRE);
  int shift = g_pvclock.tsc_shift;
  arch::wrmsr(kMsrKvmSystemTimeNew, 0);
  if (mul == 0)
    return 0;
  uint64_t hz = (uint64_t{1000000000} << 32) / mul;
  return shift >= 0 ? hz >> shift : hz << -shift;
}

}  // namespace

// Detect the TSC frequency once and keep the entry stamp (read while boot data is mapped).
void time_init() {
  g_entry_tsc = ::boot_entry_tsc;
  uint64_t hz = tsc_hz_from_cpuid();
  if (hz == 0)
    hz = tsc_hz_from_kvmclock();
  if (hz != 0)
    g_tsc_hz = hz, g_known = true;
}

// TSC frequency in Hz.
uint64_t tsc_hz() {
  return g_tsc_hz;
}
// Whether the frequency came from the hypervisor or CPUID.
bool tsc_hz_known() {
  return g_known;
}

// Ticks to microseconds without overflow for realistic uptimes.
uint64_t tsc_to_us(uint64_t ticks) {
  return ticks / (g_tsc_hz / 1000000);
}

// Seconds and the sub-second remainder apart: remainder * 1e9 stays below 2^64 for any
// TSC under 18 GHz.
uint64_t tsc_to_ns(uint64_t ticks) {
  uint64_t seconds = ticks / g_tsc_hz;
  uint64_t rest = ticks % g_tsc_hz;
  return seconds * 1000000000 + rest * 1000000000 / g_tsc_hz;
}

// The TSC at the first instruction of pvh_entry.
uint64_t boot_entry_tsc() {
  return g_entry_tsc;
}

}  // namespace hvmm::guest
