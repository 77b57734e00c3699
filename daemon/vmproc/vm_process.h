// The VM process's life (`hvmm-vm --channel-fd N`), channel.proto's protocol from its side:
// read the Launch, build the VM, report Started or Failed, serve requests while the VM runs
// on the main thread, report Exiting and return the VM's exit status.
#pragma once

#include <cstdint>
#include <span>

namespace hvmm::daemon::vmproc {

struct VmProcessOptions {
  int channel_fd = -1;  // one end of the daemon's socketpair
  // Tests only: once the VM is built and sandboxed, make a system call the filter forbids
  // (the process must die of SIGSYS).
  bool test_forbidden_syscall = false;
};

// Run one VM process to its end; the return value is the process's exit status.
int run_vm_process(const VmProcessOptions& options, std::span<const uint8_t> bundled_kernel);

}  // namespace hvmm::daemon::vmproc
