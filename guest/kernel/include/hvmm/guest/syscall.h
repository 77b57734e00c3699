// System-call numbers of the guest's ring-3 ABI: `syscall` with the number in RAX and
// arguments in RDI, RSI, RDX; the result comes back in RAX (negative on error).
#pragma once

namespace hvmm::guest {

enum SyscallNumber : unsigned {
  kSysExit = 0,    // exit(code)
  kSysBrk = 1,     // brk(new_break) -> break (0 queries)
  kSysMmap = 2,    // mmap(length, prot) -> address
  kSysMunmap = 3,  // munmap(address, length) -> 0
  kSysReport = 4,  // report(value): hand a result to the kernel
};

// Install the `syscall` entry MSRs on the calling CPU.
void syscall_init_this_cpu();

}  // namespace hvmm::guest
