// Kernel panic and VM exit through the debug-exit port 0xf4.
#pragma once

#include <cstdint>

namespace hvmm::guest {

// Exit statuses written to port 0xf4 (QEMU's isa-debug-exit reports (V << 1) | 1).
enum ExitStatus : uint8_t {
  kExitOk = 0,
  kExitSelftestFailed = 1,
  kExitPanic = 2,
  kExitKernelFault = 3,
  kExitUserFault = 4,
  kExitControlFailed = 5,  // the control device needs a reset or stopped returning buffers
};

struct TrapFrame;

// Leave the VM with `status`; halts forever if no debug-exit device is present.
[[noreturn]] void vm_exit(uint8_t status);

// Print the message and exit with kExitPanic.
[[noreturn]] void panic(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Print the message, the faulting address and a register dump, then exit with `status`.
[[noreturn]] void panic_with_frame(uint8_t status, const TrapFrame& frame, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Print the registers of a trap frame.
void dump_frame(const TrapFrame& frame);

}  // namespace hvmm::guest
