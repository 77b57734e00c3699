// The VM process's allow-list and its loading (seccomp_filter.h).
#include "hvmm/daemon/vmproc/seccomp_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <string>

namespace hvmm::daemon::vmproc {
namespace {

// How an allowed call's arguments are constrained.
enum class Rule {
  kAny,          // any arguments
  kThreadsOnly,  // clone: CLONE_THREAD set (threads, never new processes)
  kNoExec,       // mmap, mprotect: PROT_EXEC clear (no new executable memory)
  kOwnProcess,   // tgkill: only this process's threads (vCPU kicks)
  kReadOnly,     // openat: O_RDONLY, nothing created, truncated or appended
  kNoSuchCall,   // answered ENOSYS (clone3: glibc falls back to clone, whose flags show)
};

struct Entry {
  AllowedSyscall syscall;
  Rule rule;
};

// The list, by group (README.md, "seccomp"), as strace showed the VM process's life needs.
constexpr std::array kEntries = {
    // io: the channel, the console and logs (fds opened before the filter), the swap file
    Entry{{"read", "io"}, Rule::kAny},
    Entry{{"write", "io"}, Rule::kAny},
    Entry{{"sendto", "io"}, Rule::kAny},
    Entry{{"pread64", "io"}, Rule::kAny},
    Entry{{"pwrite64", "io"}, Rule::kAny},
    Entry{{"ftruncate", "io"}, Rule::kAny},
    Entry{{"lseek", "io"}, Rule::kAny},
    Entry{{"poll", "io"}, Rule::kAny},
    Entry{{"close", "io"}, Rule::kAny},
    Entry{{"shutdown", "io"}, Rule::kAny},
    // proc: the host memory figures (/proc/self/status), read only
    Entry{{"openat", "proc"}, Rule::kReadOnly},
    // memory: the memfd's holes (balloon, reclaim) and the process's own heap
    Entry{{"fallocate", "memory"}, Rule::kAny},
    Entry{{"madvise", "memory"}, Rule::kAny},
    Entry{{"mmap", "memory"}, Rule::kNoExec},
    Entry{{"mprotect", "memory"}, Rule::kNoExec},
    Entry{{"munmap", "memory"}, Rule::kAny},
    Entry{{"brk", "memory"}, Rule::kAny},
    // kvm: KVM's and userfaultfd's ioctls, the stop signals' signalfd
    Entry{{"ioctl", "kvm"}, Rule::kAny},
    Entry{{"signalfd4", "kvm"}, Rule::kAny},
    // threads: vCPUs, fault handlers, reclaim, the channel's reader, writer and workers
    Entry{{"clone", "threads"}, Rule::kThreadsOnly},
    Entry{{"clone3", "threads"}, Rule::kNoSuchCall},
    Entry{{"futex", "threads"}, Rule::kAny},
    Entry{{"set_robust_list", "threads"}, Rule::kAny},
    Entry{{"rseq", "threads"}, Rule::kAny},
    Entry{{"sched_yield", "threads"}, Rule::kAny},
    Entry{{"gettid", "threads"}, Rule::kAny},
    Entry{{"getpid", "threads"}, Rule::kAny},
    Entry{{"tgkill", "threads"}, Rule::kOwnProcess},
    Entry{{"rt_sigaction", "threads"}, Rule::kAny},
    Entry{{"rt_sigprocmask", "threads"}, Rule::kAny},
    Entry{{"rt_sigreturn", "threads"}, Rule::kAny},
    Entry{{"restart_syscall", "threads"}, Rule::kAny},
    Entry{{"exit", "threads"}, Rule::kAny},
    Entry{{"exit_group", "threads"}, Rule::kAny},
    // time: deadlines and the fault records' clock, when the vDSO cannot answer
    Entry{{"clock_gettime", "time"}, Rule::kAny},
};

constexpr auto kAllowed = [] {
  std::array<AllowedSyscall, kEntries.size()> out{};
  for (size_t i = 0; i < kEntries.size(); ++i) {
    out[i] = kEntries[i].syscall;
  }
  return out;
}();

// Frees a libseccomp context.
struct ContextDeleter {
  void operator()(scmp_filter_ctx context) const { seccomp_release(context); }
};
using Context = std::unique_ptr<void, ContextDeleter>;

// Add `entry`'s rule to `context`.
int add_rule(scmp_filter_ctx context, const Entry& entry) {
  const std::string name(entry.syscall.name);
  const int number = seccomp_syscall_resolve_name(name.c_str());
  if (number == __NR_SCMP_ERROR) {
    return -ENOENT;
  }
  switch (entry.rule) {
    case Rule::kAny:
      return seccomp_rule_add(context, SCMP_ACT_ALLOW, number, 0);
    case Rule::kThreadsOnly:
      return seccomp_rule_add(context, SCMP_ACT_ALLOW, number, 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    case Rule::kNoExec:
      return seccomp_rule_add(context, SCMP_ACT_ALLOW, number, 1,
                              SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    case Rule::kOwnProcess:
      return seccomp_rule_add(context, SCMP_ACT_ALLOW, number, 1,
                              SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(::getpid())));
    case Rule::kReadOnly:
      return seccomp_rule_add(
          context, SCMP_ACT_ALLOW, number, 1,
          SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | __O_TMPFILE, 0));
    case Rule::kNoSuchCall:
      return seccomp_rule_add(context, SCMP_ACT_ERRNO(ENOSYS), number, 0);
  }
  return -EINVAL;
}

Error seccomp_error(const char* what, int rc) {
  return make_error(ErrorCode::kInternal, "seccomp: {}: {}", what, std::strerror(-rc));
}

}  // namespace

std::span<const AllowedSyscall> allowed_syscalls() {
  return kAllowed;
}

bool syscall_allowed(std::string_view name) {
  return std::any_of(kAllowed.begin(), kAllowed.end(),
                     [name](const AllowedSyscall& entry) { return entry.name == name; });
}

// Every rule first; nothing is loaded unless all were accepted.
Result<void> install_seccomp_filter() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return make_error(ErrorCode::kInternal, "prctl(PR_SET_NO_NEW_PRIVS): {}", std::strerror(errno));
  }
  Context context(seccomp_init(SCMP_ACT_KILL_PROCESS));
  if (!context) {
    return make_error(ErrorCode::kInternal, "seccomp_init failed");
  }
  if (int rc = seccomp_attr_set(context.get(), SCMP_FLTATR_CTL_TSYNC, 1); rc != 0) {
    return seccomp_error("cannot synchronize the filter across threads", rc);
  }
  for (const Entry& entry : kEntries) {
    if (int rc = add_rule(context.get(), entry); rc != 0) {
      return seccomp_error(std::string(entry.syscall.name).c_str(), rc);
    }
  }
  if (int rc = seccomp_load(context.get()); rc != 0) {
    return seccomp_error("loading the filter", rc);
  }
  return Ok();
}

}  // namespace hvmm::daemon::vmproc
