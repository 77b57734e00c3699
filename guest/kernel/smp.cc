// SMP bring-up: the boot CPU copies the 16-bit trampoline to kTrampolinePage, and for each
// AP patches its stack and index, sends INIT and SIPI through the x2APIC ICR, and waits for
// the AP to report online. APs then idle in smp_idle_loop(), running posted work.
#include "hvmm/guest/smp.h"
#include "hvmm/guest/syscall.h"

#include "hvmm/guest/acpi.h"
#include "hvmm/guest/arch/apic.h"
#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/arch/gdt.h"
#include "hvmm/guest/arch/trap.h"
#include "hvmm/guest/cmdline.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/panic.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/runtime.h"
#include "hvmm/guest/time.h"
#include "hvmm/guest/tlb.h"

extern "C" char trampoline_start[], trampoline_end[], trampoline_gdt[], trampoline_prot[];
extern "C" char trampoline_long[], trampoline_gdtr[], trampoline_jump32[], trampoline_jump64[];
extern "C" char trampoline_cr3[], trampoline_stack[];
extern "C" char trampoline_entry[], trampoline_cpu[];
extern "C" uint64_t boot_pml4[512];
extern "C" [[noreturn]] void ap_main(uint64_t cpu);

namespace hvmm::guest {
namespace {

constexpr uint64_t kTrampolinePage = 0x8000;  // reserved with all of low memory
constexpr uint64_t kApStackSize = 16 * 1024;  // vmalloc'ed, with an unmapped page below
constexpr unsigned kIstStackOrder = 1;        // 8 KiB
constexpr uint64_t kApTimeoutUs = 1000000;    // per SIPI; an AP normally answers in ~1 ms

unsigned g_possible = 1;
uint32_t g_apic_ids[kMaxCpus];

// Per-CPU posted work.
struct WorkSlot {
  CpuWork fn;
  void* arg;
  volatile uint32_t busy;
};
WorkSlot g_work[kMaxCpus];

// Write a value into the trampoline copy at the offset of `field`.
template <typename T>
void patch(char* copy, const char* field, T value) {
  memcpy(copy + (field - trampoline_start), &value, sizeof(T));
}

// Allocate a kernel stack of 2^order pages and return its top.
uint64_t alloc_stack(unsigned order) {
  PhysAddr pa = kmem().buddy.alloc_phys(mm::kGfpKernel, order);
  if (pa == mm::kNoPhys)
    panic("smp: no memory for a CPU stack");
  return reinterpret_cast<uint64_t>(mm::arch::phys_to_virt(pa)) + (kPageSize << order);
}

// The AP starts on the boot page tables: give them the kernel's vmalloc PML4 slot (its PDPT
// never changes) so the AP can use its vmalloc'ed stack before it loads the kernel tables.
void share_vmalloc_slot_with_boot_tables() {
  constexpr unsigned kSlot = (kVmallocStart >> 39) & 511;
  auto* boot = static_cast<uint64_t*>(
      mm::arch::phys_to_virt(PhysAddr(reinterpret_cast<uint64_t>(boot_pml4))));
  auto* kernel = static_cast<uint64_t*>(mm::arch::phys_to_virt(kmem().kernel_pt.root()));
  boot[kSlot] = kernel[kSlot];
}

// Decide which APIC ids to start: the MADT, else CPUID.1:EBX[23:16] with ids 0..n-1.
unsigned discover_cpus(const BootInfo& info) {
  unsigned n = acpi_find_cpus(info, g_apic_ids, kMaxCpus);
  const char* source = "ACPI MADT";
  if (n == 0) {
    arch::CpuidResult r = arch::cpuid(1);
    n = (r.edx & (1u << 28)) ? (r.ebx >> 16) & 0xff : 1;
    if (n == 0)
      n = 1;
    if (n > kMaxCpus)
      n = kMaxCpus;
    for (unsigned i = 0; i < n; ++i)
      g_apic_ids[i] = i;
    source = "CPUID";
  }
  uint64_t cap = cmdline_get_number("nr_cpus", kMaxCpus);
  if (cap >= 1 && n > cap)
    n = static_cast<unsigned>(cap);
  printk_level(kLogInfo, "smp: %u CPUs from %s\n", n, source);
  return n;
}

// Move the boot CPU's APIC id to slot 0 so CPU indices and APIC ids line up.
void put_boot_cpu_first(unsigned n) {
  uint32_t self = arch::apic_id();
  for (unsigned i = 0; i < n; ++i) {
    if (g_apic_ids[i] == self) {
      g_apic_ids[i] = g_apic_ids[0];
      g_apic_ids[0] = self;
      return;
    }
  }
}

// Wait up to `us` microseconds for `cpu` to come online.
bool wait_online(unsigned cpu, uint64_t us) {
  uint64_t deadline = arch::rdtsc() + us * (tsc_hz() / 1000000);
  while (!cpu_data(cpu).online) {
    if (arch::rdtsc() > deadline)
      return false;
    arch::pause();
  }
  return true;
}

// Start one AP: patch the trampoline, INIT, SIPI, and a second SIPI if it is slow.
bool start_ap(unsigned cpu, char* copy) {
  uint64_t stack = alloc_guarded_stack(cpu);
  cpu_data(cpu).ist_top = alloc_stack(kIstStackOrder);
  patch<uint64_t>(copy, trampoline_stack, stack - 8);
  patch<uint64_t>(copy, trampoline_cpu, cpu);
  uint32_t dest = g_apic_ids[cpu];
  arch::apic_send_init(dest);
  arch::apic_send_sipi(dest, kTrampolinePage >> 12);
  if (wait_online(cpu, kApTimeoutUs))
    return true;
  arch::apic_send_sipi(dest, kTrampolinePage >> 12);
  return wait_online(cpu, 5 * kApTimeoutUs);
}

// Copy the trampoline below 1 MiB and fill in the fields common to all APs.
char* install_trampoline() {
  char* copy = reinterpret_cast<char*>(kTrampolinePage + kDirectMapBase);
  memcpy(copy, trampoline_start, trampoline_end - trampoline_start);
  patch<uint32_t>(copy, trampoline_gdtr + 2,
                  static_cast<uint32_t>(kTrampolinePage + (trampoline_gdt - trampoline_start)));
  patch<uint32_t>(copy, trampoline_jump32,
                  static_cast<uint32_t>(kTrampolinePage + (trampoline_prot - trampoline_start)));
  patch<uint32_t>(copy, trampoline_jump64,
                  static_cast<uint32_t>(kTrampolinePage + (trampoline_long - trampoline_start)));
  // boot_pml4 lives in the identity-mapped boot section: its address is physical.
  patch<uint64_t>(copy, trampoline_cr3, reinterpret_cast<uint64_t>(boot_pml4));
  patch<uint64_t>(copy, trampoline_entry, reinterpret_cast<uint64_t>(&ap_main));
  return copy;
}

}  // namespace

// Allocate a kernel stack for `cpu` from vmalloc: every vmalloc area is followed by an
// unmapped guard page, so the page below each stack is unmapped and an overflow faults
// (and ends in a double fault on IST1, reported as a stack overflow) instead of silently
// overwriting a neighbour.
uint64_t alloc_guarded_stack(unsigned cpu) {
  void* base = kmem().vmalloc.alloc(kApStackSize);
  if (base == nullptr)
    panic("smp: no memory for the stack of CPU %u", cpu);
  cpu_data(cpu).stack_bottom = reinterpret_cast<uint64_t>(base);
  cpu_data(cpu).stack_top = reinterpret_cast<uint64_t>(base) + kApStackSize;
  return cpu_data(cpu).stack_top;
}

// CPUs counted by smp_init (1 before it).
unsigned possible_cpus() {
  return g_possible;
}
// The x2APIC id of a CPU index.
uint32_t cpu_apic_id(unsigned cpu) {
  return g_apic_ids[cpu];
}

// See smp.h.
void smp_init(const BootInfo& info) {
  if (!arch::apic_available())
    return;  // no APIC: no IPIs
  unsigned n = discover_cpus(info);
  put_boot_cpu_first(n);
  cpu_data(0).apic_id = g_apic_ids[0];
  g_possible = n;
  if (n == 1)
    return;
  share_vmalloc_slot_with_boot_tables();
  char* copy = install_trampoline();
  for (unsigned cpu = 1; cpu < n; ++cpu) {
    uint64_t t0 = arch::rdtsc();
    if (!start_ap(cpu, copy)) {
      printk("smp: CPU %u (APIC id %u) did not come online\n", cpu, g_apic_ids[cpu]);
      g_possible = cpu;
      break;
    }
    printk_level(kLogInfo, "smp: CPU %u (APIC id %u) online after %lu us\n", cpu, g_apic_ids[cpu],
                 tsc_to_us(arch::rdtsc() - t0));
  }
}

// Post work to an idle CPU and wake it with an IPI.
bool smp_call_async(unsigned cpu, CpuWork fn, void* arg) {
  if (cpu >= possible_cpus() || !cpu_data(cpu).online)
    return false;
  WorkSlot& w = g_work[cpu];
  if (__atomic_exchange_n(&w.busy, 1u, __ATOMIC_ACQUIRE) != 0)
    return false;
  w.fn = fn;
  w.arg = arg;
  __atomic_store_n(&w.busy, 2u, __ATOMIC_RELEASE);
  arch::apic_send_ipi(g_apic_ids[cpu], arch::kVectorCallFunction);
  return true;
}

// Spin until the posted work of `cpu` is done, serving TLB requests meanwhile.
void smp_wait(unsigned cpu) {
  while (__atomic_load_n(&g_work[cpu].busy, __ATOMIC_ACQUIRE) != 0) {
    tlb_service_pending();
    arch::pause();
  }
}

// The idle loop of an AP: run posted work, otherwise halt until an interrupt.
[[noreturn]] void smp_idle_loop(unsigned cpu) {
  WorkSlot& w = g_work[cpu];
  for (;;) {
    arch::cli();
    if (__atomic_load_n(&w.busy, __ATOMIC_ACQUIRE) == 2) {
      arch::sti();
      w.fn(w.arg);
      __atomic_store_n(&w.busy, 0u, __ATOMIC_RELEASE);
      continue;
    }
    asm volatile("sti; hlt" : : : "memory");
  }
}

}  // namespace hvmm::guest

// The 64-bit entry of an AP, reached from the trampoline on the boot page tables with its
// own stack: load the kernel GDT/TSS/IDT, per-CPU block, final page tables and APIC.
extern "C" [[noreturn]] void ap_main(uint64_t cpu) {
  using namespace hvmm::guest;
  unsigned c = static_cast<unsigned>(cpu);
  arch::gdt_load(c, cpu_data(c).ist_top);
  percpu_install(c);
  arch::idt_load();
  syscall_init_this_cpu();
  arch::write_cr4(arch::read_cr4() | (1u << 7));
  cpu_enable_pcid();
  arch::write_cr3(kmem().kernel_pt.root().value());
  this_cpu().loaded_cr3 = kmem().kernel_pt.root().value();
  this_cpu().lazy_tlb = 1;
  arch::apic_init_this_cpu();
  cpu_data(c).apic_id = arch::apic_id();
  set_cpu_online(c);
  smp_idle_loop(c);
}
