// The VM process's allow-list and its loading (seccomp_filter.h).
#include "hvmm/daemon/vmproc/seccomp_filter.h"

#include <errno.h>
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
};

struct Entry {
  AllowedSyscall syscall;
  Rule rule;
};

// The list, by group (README.md, "seccomp"), as strace showed the VM process's life needs.
constexpr std::array kEntries = {
    // channel, console, logs, swap file: reads and writes of fds opened before the filter
    Entry{{"read", "io"}, Rule::kAny},
    Entry{{"write", "io"}, Rule::kAny},
    Entry{{"readv", "io"}, Rule::kAny},
    Entry{{"writev", "io"}, Rule::kAny},
    Entry{{"pread64", "io"}, Rule::kAny},
    Entry{{"pwrite64", "io"}, Rule::kAny},
    Entry{{"recvfrom", "io"}, Rule::kAny},
    Entry{{"sendto", "io"}, Rule::kAny},
    Entry{{"close", "io"}, Rule::kAny},
    Entry{{"lseek", "io"}, Rule::kAny},
    Entry{{"shutdown", "io"}, Rule::kAny},
    Entry{{"fstat", "io"}, Rule::kAny},
    Entry{{"newfstatat", "io"}, Rule::kAny},
    Entry{{"fcntl", "io"}, Rule::kAny},
    Entry{{"poll", "io"}, Rule::kAny},
    Entry{{"ppoll", "io"}, Rule::kAny},
    // host memory figures: /proc/self/status
    Entry{{"openat", "proc"}, Rule::kAny},
    // guest memory: the memfd's holes (balloon, reclaim) and the process's own heap
    Entry{{"fallocate", "memory"}, Rule::kAny},
    Entry{{"madvise", "memory"}, Rule::kAny},
    Entry{{"mmap", "memory"}, Rule::kNoExec},
    Entry{{"mprotect", "memory"}, Rule::kNoExec},
    Entry{{"munmap", "memory"}, Rule::kAny},
    Entry{{"mremap", "memory"}, Rule::kAny},
    Entry{{"brk", "memory"}, Rule::kAny},
    // KVM and userfaultfd: their ioctls, eventfds (irqfd, ioeventfd, stop), the stop signals
    Entry{{"ioctl", "kvm"}, Rule::kAny},
    Entry{{"eventfd2", "kvm"}, Rule::kAny},
    Entry{{"signalfd4", "kvm"}, Rule::kAny},
    // threads: vCPUs, fault handlers, reclaim, the channel's reader, writer and workers
    Entry{{"clone", "threads"}, Rule::kThreadsOnly},
    Entry{{"futex", "threads"}, Rule::kAny},
    Entry{{"set_robust_list", "threads"}, Rule::kAny},
    Entry{{"rseq", "threads"}, Rule::kAny},
    Entry{{"sched_yield", "threads"}, Rule::kAny},
    Entry{{"sched_getaffinity", "threads"}, Rule::kAny},
    Entry{{"gettid", "threads"}, Rule::kAny},
    Entry{{"getpid", "threads"}, Rule::kAny},
    Entry{{"tgkill", "threads"}, Rule::kOwnProcess},
    Entry{{"rt_sigaction", "threads"}, Rule::kAny},
    Entry{{"rt_sigprocmask", "threads"}, Rule::kAny},
    Entry{{"rt_sigreturn", "threads"}, Rule::kAny},
    Entry{{"sigaltstack", "threads"}, Rule::kAny},
    Entry{{"restart_syscall", "threads"}, Rule::kAny},
    Entry{{"exit", "threads"}, Rule::kAny},
    Entry{{"exit_group", "threads"}, Rule::kAny},
    // time: deadlines, the fault log's clock, sleeps, random page-token keys
    Entry{{"clock_gettime", "time"}, Rule::kAny},
    Entry{{"gettimeofday", "time"}, Rule::kAny},
    Entry{{"nanosleep", "time"}, Rule::kAny},
    Entry{{"clock_nanosleep", "time"}, Rule::kAny},
    Entry{{"getrandom", "time"}, Rule::kAny},
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

// clone3 answers ENOSYS rather than kill: glibc then creates threads with clone, whose flags
// (unlike clone3's, in memory) the filter can check.
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
  const int clone3 = seccomp_syscall_resolve_name("clone3");
  if (clone3 != __NR_SCMP_ERROR) {
    if (int rc = seccomp_rule_add(context.get(), SCMP_ACT_ERRNO(ENOSYS), clone3, 0); rc != 0) {
      return seccomp_error("clone3", rc);
    }
  }
  if (int rc = seccomp_load(context.get()); rc != 0) {
    return seccomp_error("loading the filter", rc);
  }
  return Ok();
}

}  // namespace hvmm::daemon::vmproc
