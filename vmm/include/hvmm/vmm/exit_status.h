// Exit statuses of `hvmm run`.
//
// 0-255 is normally the byte the guest wrote to I/O port 0xf4. hvmm's own outcomes use the
// values below; guests that want unambiguous results should avoid 120-127 themselves.
#pragma once

namespace hvmm::vmm {

inline constexpr int kExitBadArguments = 120;   // invalid option, file or kernel; no VM made
inline constexpr int kExitSetupFailed = 121;    // KVM unavailable or VM creation failed
inline constexpr int kExitTripleFault = 122;    // a vCPU triple faulted (KVM_EXIT_SHUTDOWN)
inline constexpr int kExitInternalError = 123;  // failed entry, KVM internal error, bad exit
inline constexpr int kExitGuestShutdown = 124;  // guest asked for shutdown/reset, not 0xf4
inline constexpr int kExitSignalBase = 128;     // 128 + signal number (SIGINT, SIGTERM)

// The I/O port whose written byte ends the VM with that status (QEMU's isa-debug-exit
// location; QEMU reports (V << 1) | 1 where hvmm reports V).
inline constexpr unsigned short kExitPort = 0xf4;

}  // namespace hvmm::vmm
