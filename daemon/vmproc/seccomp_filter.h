// The VM process's seccomp filter (libseccomp): once the Machine is built, every thread of
// the process may make only the system calls on the allow-list; anything else kills the
// whole process with SIGSYS (SCMP_ACT_KILL_PROCESS), so a VMM compromised through a guest's
// input can neither open sockets, start programs nor reach another VM. README.md says why
// each group of the list is needed and how it was found (strace -f over a VM's whole life).
#pragma once

#include <span>
#include <string_view>

#include "hvmm/base/result.h"

namespace hvmm::daemon::vmproc {

// One entry of the allow-list: a system call and the group it belongs to (README.md).
struct AllowedSyscall {
  std::string_view name;
  std::string_view group;
};

// Every system call the filter allows, some with argument rules (seccomp_filter.cc).
std::span<const AllowedSyscall> allowed_syscalls();
// Whether `name` (strace's spelling) is on the list.
bool syscall_allowed(std::string_view name);

// Set no_new_privs and load the filter for every thread of the process (TSYNC). Fails,
// changing nothing, when the kernel or libseccomp cannot; the caller then must not run the VM.
Result<void> install_seccomp_filter();

}  // namespace hvmm::daemon::vmproc
