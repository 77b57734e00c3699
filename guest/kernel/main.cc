// kernel_main: the boot sequence of the boot CPU, from the first C++ instruction to the
// selftests or workloads, and the final exit through port 0xf4.
#include "hvmm/guest/arch/apic.h"
#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/arch/gdt.h"
#include "hvmm/guest/arch/trap.h"
#include "hvmm/guest/boot_info.h"
#include "hvmm/guest/cmdline.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/control.h"
#include "hvmm/guest/idle.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/panic.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/process.h"
#include "hvmm/guest/runtime.h"
#include "hvmm/guest/selftest.h"
#include "hvmm/guest/smp.h"
#include "hvmm/guest/syscall.h"
#include "hvmm/guest/time.h"
#include "hvmm/guest/timer.h"
#include "hvmm/guest/tlb.h"
#include "hvmm/guest/virtio.h"
#include "hvmm/guest/virtio_balloon.h"
#include "hvmm/guest/workloads.h"

using Ctor = void (*)();
extern "C" [[noreturn]] void kernel_main_late();
extern "C" [[noreturn]] void run_on_stack(void (*fn)(), uint64_t stack_top);
extern "C" Ctor __init_array_start[];
extern "C" Ctor __init_array_end[];

namespace hvmm::guest {
namespace {

BootInfo g_boot_info;
alignas(16) uint8_t g_bsp_ist_stack[8192];

// Run the global constructors the linker collected (the kernel should have none, but
// guest/mm objects may).
void run_constructors() {
  for (Ctor* c = __init_array_start; c != __init_array_end; ++c)
    (*c)();
}

// Load GDT/TSS, per-CPU GS base and IDT on the boot CPU.
void cpu_early_init() {
  arch::gdt_load(0, reinterpret_cast<uint64_t>(g_bsp_ist_stack + sizeof(g_bsp_ist_stack)));
  percpu_install(0);
  arch::idt_init();
  arch::idt_load();
}

// Print a boot phase with the time since the PVH entry (loglevel=7).
void phase(const char* name) {
  printk_level(kLogDebug, "boot: %s at %lu us\n", name,
               tsc_to_us(arch::rdtsc() - boot_entry_tsc()));
}

// Print the boot time: guest TSC from the PVH entry (and from the TSC's zero, which KVM
// puts at vCPU creation) to now.
void print_boot_time() {
  uint64_t now = arch::rdtsc();
  printk(
      "boot: %lu us from PVH entry to selftests (guest TSC; entry at %lu us since TSC 0, "
      "TSC %lu kHz%s)\n",
      tsc_to_us(now - boot_entry_tsc()), tsc_to_us(boot_entry_tsc()), tsc_hz() / 1000,
      tsc_hz_known() ? "" : " assumed");
}

// Recurse `depth` times with 512-byte frames (crash=stack asks for far more than fits).
[[gnu::noinline]] uint64_t recurse(uint64_t depth) {
  volatile uint8_t frame[512];
  frame[0] = static_cast<uint8_t>(depth);
  return depth == 0 ? frame[0] : recurse(depth - 1) + frame[0];
}

// Work posted to CPU 1 for crash=stack.
void overflow_stack(void*) {
  printk("crash: overflowing the stack of CPU %u\n", this_cpu().cpu);
  recurse(cmdline_get_number("crash_depth", 1 << 20));
}

// `crash=pagefault|panic|stack`: fail on purpose, to show (and test) the panic path.
void crash_if_requested() {
  char how[16];
  if (!cmdline_get("crash", how, sizeof(how)))
    return;
  if (str_equal(how, "panic"))
    panic("requested on the command line (crash=panic)");
  if (str_equal(how, "stack")) {
    // On CPU 1 when there is one (its work never returns), else on this CPU.
    if (smp_call_async(1, overflow_stack, nullptr))
      smp_wait(1);
    overflow_stack(nullptr);
  }
  if (str_equal(how, "pagefault")) {
    // Nothing is mapped below the kernel half once the boot tables are gone.
    uint64_t address = cmdline_get_number("crash_address", 0x10);
    printk("crash: reading %lx\n", address);
    (void)*reinterpret_cast<volatile uint64_t*>(address);
  }
}

// One line of TLB shootdown counters and one of page-allocator counters.
void print_counters() {
  TlbStats t = tlb_stats();
  uint64_t mean = t.shootdowns != 0 ? tsc_to_us(t.latency_tsc_total) / t.shootdowns : 0;
  printk(
      "tlb: %lu shootdowns, %lu IPIs, %lu page flushes, %lu full flushes, %lu lazy skips, "
      "latency mean %lu us max %lu us\n",
      t.shootdowns, t.ipis, t.page_flushes, t.full_flushes, t.lazy_skipped, mean,
      tsc_to_us(t.latency_tsc_max));
  mm::ZoneStats z = kmem().buddy.zone_stats(mm::kZoneDma32);
  printk(
      "buddy (DMA32): %lu free pages, %lu splits, %lu merges, %lu pcp hits, %lu refills, "
      "%lu drains\n",
      z.free_pages, z.splits, z.merges, z.pcp_hits, z.pcp_refills, z.pcp_drains);
}

// Run selftests and workloads as the command line asks; returns the exit status. With a
// control device, "nothing to do" is not said: the host will ask for work.
uint8_t run_requested_work(bool control) {
  char list[256];
  unsigned failures = 0;
  bool any = false;
  if (cmdline_get("selftest", list, sizeof(list))) {
    any = true;
    failures += selftest_run(list);
  }
  if (cmdline_has("workload")) {
    any = true;
    failures += run_workloads_from_cmdline();
  }
  if (cmdline_has("idle")) {
    any = true;
    idle_serve_devices();
  }
  if (!any && !control)
    printk("nothing to do: pass selftest=all, workload=<name>[:<size>] or idle=<seconds>\n");
  if (any)
    print_counters();
  balloon_print_stats();
  return failures == 0 ? kExitOk : kExitSelftestFailed;
}

// The command line's work, then, with a control device, the host's requests until
// kShutdown: its status, except that a command-line failure turns a requested 0 into 1.
uint8_t run_all_work() {
  bool control = control_init();
  uint8_t status = run_requested_work(control);
  if (!control)
    return status;
  uint8_t requested = control_serve_until_shutdown();
  return requested == kExitOk ? status : requested;
}

}  // namespace

}  // namespace hvmm::guest

// The first C++ function, entered on the boot stack with the physical address of
// hvm_start_info.
extern "C" [[noreturn]] void kernel_main(uint64_t start_info_paddr) {
  using namespace hvmm::guest;
  time_init();
  console_init();
  cpu_early_init();
  syscall_init_this_cpu();
  set_cpu_online(0);
  run_constructors();
  parse_start_info(start_info_paddr, g_boot_info);
  cmdline_set(g_boot_info.cmdline);
  console_set_loglevel(static_cast<int>(cmdline_get_number("loglevel", kLogInfo)));
  printk("hvmm guest kernel: PVH boot, cmdline \"%s\"\n", g_boot_info.cmdline);
  if (cmdline_get_number("loglevel", kLogInfo) >= kLogDebug)
    print_boot_info(g_boot_info);
  phase("start_info parsed");
  memory_init(g_boot_info);
  phase("memory ready");
  // Leave the boot stack (in .bss, unguarded) for a vmalloc'ed one with a guard page.
  run_on_stack(kernel_main_late, alloc_guarded_stack(0));
}

// The rest of the boot CPU's work, on its guarded stack.
extern "C" [[noreturn]] void kernel_main_late() {
  using namespace hvmm::guest;
  memory_print_summary();
  print_modules(g_boot_info);
  tlb_init();
  cpu_enable_pcid();
  if (!timer_init())
    printk("no local APIC: single CPU, no timer\n");
  phase("timer ready");
  process_init();
  phase("processes ready");
  smp_init(g_boot_info);
  printk("cpus: %u online, %s, PCID %s\n", online_cpus(),
         arch::x2apic_supported() ? "x2APIC"
         : arch::apic_available() ? "xAPIC"
                                  : "no APIC",
         pcid_enabled() ? "on" : "off");
  virtio::virtio_init();
  balloon_init();
  phase("devices ready");
  print_boot_time();
  crash_if_requested();
  vm_exit(run_all_work());
}
