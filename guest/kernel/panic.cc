// Panic, register dumps and the VM exit through port 0xf4.
#include "hvmm/guest/panic.h"

#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/arch/trap.h"
#include "hvmm/guest/console.h"

namespace hvmm::guest {
namespace {

// Print with the unlocked console path.
void print_unlocked(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vprintk_unlocked(fmt, args);
  va_end(args);
}

}  // namespace

// Write the status to the debug-exit port; halt forever if nothing stops the VM.
void vm_exit(uint8_t status) {
  arch::outb(0xf4, status);
  for (;;) {
    arch::cli();
    arch::hlt();
  }
}

// Print the general registers, segment selectors and control registers of a frame.
void dump_frame(const TrapFrame& f) {
  print_unlocked("  rip %016lx cs %04lx rflags %016lx vector %lu error %lx\n", f.rip, f.cs,
                 f.rflags, f.vector, f.error_code);
  print_unlocked("  rsp %016lx ss %04lx cr2 %016lx cr3 %016lx\n", f.rsp, f.ss, arch::read_cr2(),
                 arch::read_cr3());
  print_unlocked("  rax %016lx rbx %016lx rcx %016lx rdx %016lx\n", f.rax, f.rbx, f.rcx, f.rdx);
  print_unlocked("  rsi %016lx rdi %016lx rbp %016lx r8  %016lx\n", f.rsi, f.rdi, f.rbp, f.r8);
  print_unlocked("  r9  %016lx r10 %016lx r11 %016lx r12 %016lx\n", f.r9, f.r10, f.r11, f.r12);
  print_unlocked("  r13 %016lx r14 %016lx r15 %016lx cr0 %016lx cr4 %016lx\n", f.r13, f.r14, f.r15,
                 arch::read_cr0(), arch::read_cr4());
}

// Print "PANIC: <message>" and exit with kExitPanic.
void panic(const char* fmt, ...) {
  arch::cli();
  print_unlocked("\nPANIC: ");
  va_list args;
  va_start(args, fmt);
  vprintk_unlocked(fmt, args);
  va_end(args);
  print_unlocked("\n");
  vm_exit(kExitPanic);
}

// Print the message, the faulting address and the registers, then exit with `status`.
void panic_with_frame(uint8_t status, const TrapFrame& frame, const char* fmt, ...) {
  arch::cli();
  print_unlocked("\nPANIC: ");
  va_list args;
  va_start(args, fmt);
  vprintk_unlocked(fmt, args);
  va_end(args);
  print_unlocked("\n  faulting address %016lx (rip %016lx)\n",
                 frame.vector == 14 ? arch::read_cr2() : frame.rip, frame.rip);
  dump_frame(frame);
  vm_exit(status);
}

}  // namespace hvmm::guest
