// The C++ side of every interrupt and exception: route page faults to the fault handler,
// other exceptions to the user-fault path (ring 3) or to a panic (ring 0), and interrupts to
// their registered handlers.
#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/arch/trap.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/fault.h"
#include "hvmm/guest/panic.h"
#include "hvmm/guest/percpu.h"

extern "C" char syscall_entry_int3_next[];

namespace hvmm::guest::arch {

uint64_t syscall_int3_return_address();
InterruptHandler interrupt_handler(uint8_t vector);

namespace {

// Human-readable names of the architectural exceptions.
const char* const kExceptionNames[32] = {"divide error",
                                         "debug",
                                         "NMI",
                                         "breakpoint",
                                         "overflow",
                                         "bound range",
                                         "invalid opcode",
                                         "device not available",
                                         "double fault",
                                         "coprocessor overrun",
                                         "invalid TSS",
                                         "segment not present",
                                         "stack fault",
                                         "general protection",
                                         "page fault",
                                         "reserved",
                                         "x87 error",
                                         "alignment check",
                                         "machine check",
                                         "SIMD error",
                                         "virtualization",
                                         "control protection",
                                         "reserved",
                                         "reserved",
                                         "reserved",
                                         "reserved",
                                         "reserved",
                                         "reserved",
                                         "hypervisor injection",
                                         "VMM communication",
                                         "security",
                                         "reserved"};

}  // namespace

// Where the `syscall` entry's int3 returns to: its lower-half alias (see entry.S).
uint64_t syscall_int3_return_address() {
  return reinterpret_cast<uint64_t>(syscall_entry_int3_next) - 0xffffffff80000000ull;
}

// Name of an exception vector (for messages).
const char* exception_name(uint64_t vector) {
  return vector < 32 ? kExceptionNames[vector] : "interrupt";
}

}  // namespace hvmm::guest::arch

namespace hvmm::guest {
void syscall_from_entry(TrapFrame& frame);
}

// Entry from isr_common (entry.S).
extern "C" void trap_dispatch(hvmm::guest::TrapFrame* frame) {
  using namespace hvmm::guest;
  if (frame->vector == arch::kVectorPageFault) {
    handle_page_fault(*frame, arch::read_cr2());
    return;
  }
  if (frame->vector == 3 && frame->rip == arch::syscall_int3_return_address()) {
    syscall_from_entry(*frame);
    return;
  }
  if (frame->vector == 8) {
    // #DF runs on IST1; a fault in the page below this CPU's stack means it overflowed.
    uint64_t cr2 = arch::read_cr2();
    uint64_t bottom = this_cpu().stack_bottom;
    if (bottom != 0 && cr2 < bottom && cr2 >= bottom - 4096)
      panic_with_frame(kExitKernelFault, *frame, "kernel stack overflow on CPU %u (guard page %lx)",
                       this_cpu().cpu, cr2);
    panic_with_frame(kExitKernelFault, *frame, "double fault");
  }
  if (frame->vector < 32) {
    if (arch::from_user(*frame))
      kill_user_process(*frame, arch::exception_name(frame->vector));
    panic_with_frame(kExitKernelFault, *frame, "unhandled exception %lu (%s) in kernel",
                     frame->vector, arch::exception_name(frame->vector));
  }
  arch::InterruptHandler handler = arch::interrupt_handler(static_cast<uint8_t>(frame->vector));
  if (handler == nullptr) {
    printk_level(kLogWarn, "unexpected interrupt %lu\n", frame->vector);
    return;
  }
  handler(*frame);
}
