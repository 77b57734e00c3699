// kernel_main: the boot sequence of the boot CPU, from the first C++ instruction to the
// selftests or workloads, and the final exit through port 0xf4.
#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/arch/gdt.h"
#include "hvmm/guest/arch/trap.h"
#include "hvmm/guest/boot_info.h"
#include "hvmm/guest/cmdline.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/panic.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/time.h"

using Ctor = void (*)();
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

}  // namespace

}  // namespace hvmm::guest

// The first C++ function, entered on the boot stack with the physical address of
// hvm_start_info.
extern "C" [[noreturn]] void kernel_main(uint64_t start_info_paddr) {
  using namespace hvmm::guest;
  time_init();
  console_init();
  cpu_early_init();
  run_constructors();
  parse_start_info(start_info_paddr, g_boot_info);
  cmdline_set(g_boot_info.cmdline);
  console_set_loglevel(static_cast<int>(cmdline_get_number("loglevel", kLogInfo)));
  printk("hvmm guest kernel booting (PVH)\n");
  print_boot_info(g_boot_info);
  uint64_t now = arch::rdtsc();
  printk("boot: %lu us since PVH entry (TSC %lu Hz%s)\n", tsc_to_us(now - boot_entry_tsc()),
         tsc_hz(), tsc_hz_known() ? "" : ", assumed");
  vm_exit(kExitOk);
}
