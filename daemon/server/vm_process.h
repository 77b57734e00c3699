// Starting a VM process and learning how it ended.
//
// spawn_vm_process() runs `hvmm-vm --channel-fd 3` with one end of a fresh socketpair as fd
// 3, a fresh pipe as its stdout and stderr, /dev/null as stdin and nothing else open (every
// other descriptor of the daemon is closed in the child: close_range), default signal
// dispositions, an empty signal mask and its own process group (a terminal's ^C reaches the
// daemon, which stops VMs in order, not the VMs directly). It uses posix_spawn (vfork-like: no
// fork handlers, safe in the daemon's threads). The caller gets the pid, a pidfd (readable
// when the process has exited; signals go through it, so a recycled pid is never hit), and its
// ends of the channel and of the output pipe, all close-on-exec.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "hvmm/base/result.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::daemon {

struct VmProcess {
  pid_t pid = -1;
  vmm::UniqueFd pidfd;
  vmm::UniqueFd channel;  // the daemon's end of the socketpair
  vmm::UniqueFd output;   // the read end of the child's stdout+stderr
};

// Start `executable` as the VM process of a VM.
Result<VmProcess> spawn_vm_process(const std::string& executable);

// Send `signal` through the process's pidfd (nothing happens once it has been reaped).
Result<void> signal_vm_process(int pidfd, int signal);

// How a process ended.
struct ProcessEnd {
  std::optional<int> status;  // exited with this status
  std::optional<int> signal;  // killed by this signal
};

// Reap `pid` if it has exited (never blocks); nullopt while it runs.
std::optional<ProcessEnd> reap_vm_process(pid_t pid);

// "9 (SIGKILL)".
std::string describe_signal(int signal);

}  // namespace hvmm::daemon
