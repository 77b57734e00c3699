// Spawning and reaping VM processes (vm_process.h).
#include "hvmm/daemon/server/vm_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "hvmm/daemon/common/spawn_setup.h"

extern char** environ;

namespace hvmm::daemon {
namespace {

// The child's channel descriptor (channel.proto: `--channel-fd N`).
constexpr int kChannelFd = 3;
// Descriptors are moved at least this high before spawning, so the file actions' dup2s
// onto 1, 2 and 3 can never overwrite a source that happens to sit there.
constexpr int kHighFd = 10;

Error os_error(const char* what) {
  return make_error(ErrorCode::kInternal, "{}: {}", what, std::strerror(errno));
}

Result<vmm::UniqueFd> move_high(vmm::UniqueFd fd) {
  int high = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, kHighFd);
  if (high < 0) {
    return os_error("fcntl(F_DUPFD_CLOEXEC)");
  }
  return vmm::UniqueFd(high);
}

void prepare(SpawnSetup& setup, int channel, int output) {
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&setup.attributes, &none);
  posix_spawnattr_setsigdefault(&setup.attributes, &all);
  posix_spawnattr_setpgroup(&setup.attributes, 0);
  posix_spawnattr_setflags(&setup.attributes,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  posix_spawn_file_actions_addopen(&setup.actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&setup.actions, output, 1);
  posix_spawn_file_actions_adddup2(&setup.actions, output, 2);
  posix_spawn_file_actions_adddup2(&setup.actions, channel, kChannelFd);
  posix_spawn_file_actions_addclosefrom_np(&setup.actions, kChannelFd + 1);
}

}  // namespace

Result<VmProcess> spawn_vm_process(const std::string& executable) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return os_error("socketpair");
  }
  vmm::UniqueFd ours(pair[0]);
  auto theirs = move_high(vmm::UniqueFd(pair[1]));
  HVMM_TRY(theirs);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return os_error("pipe2");
  }
  vmm::UniqueFd output_read(pipe_fds[0]);
  auto output_write = move_high(vmm::UniqueFd(pipe_fds[1]));
  HVMM_TRY(output_write);

  SpawnSetup setup;
  prepare(setup, theirs->get(), output_write->get());
  std::string channel_arg = std::to_string(kChannelFd);
  std::vector<char*> argv = {const_cast<char*>(executable.c_str()),
                             const_cast<char*>("--channel-fd"), channel_arg.data(), nullptr};
  pid_t pid = -1;
  int spawned = ::posix_spawn(&pid, executable.c_str(), &setup.actions, &setup.attributes,
                              argv.data(), environ);
  if (spawned != 0) {
    return make_error(spawned == ENOENT ? ErrorCode::kUnavailable : ErrorCode::kInternal,
                      "vm-process '{}': cannot run it: {}", executable, std::strerror(spawned));
  }
  // The child cannot be reaped by anyone else before this (the daemon reaps only by pid,
  // after its pidfd said so), so the pidfd refers to it.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    Error error = os_error("pidfd_open");
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return error;
  }
  ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  VmProcess process;
  process.pid = pid;
  process.pidfd = vmm::UniqueFd(pidfd);
  process.channel = std::move(ours);
  process.output = std::move(output_read);
  return process;
}

Result<void> signal_vm_process(int pidfd, int signal) {
  if (::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0) != 0 && errno != ESRCH) {
    return os_error("pidfd_send_signal");
  }
  return Ok();
}

std::optional<ProcessEnd> reap_vm_process(pid_t pid) {
  int wstatus = 0;
  pid_t reaped = ::waitpid(pid, &wstatus, WNOHANG);
  if (reaped == 0) {
    return std::nullopt;
  }
  ProcessEnd end;
  if (reaped < 0) {
    end.status = -1;  // not ours any more (cannot happen: the daemon is its only reaper)
  } else if (WIFEXITED(wstatus)) {
    end.status = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    end.signal = WTERMSIG(wstatus);
  }
  return end;
}

std::string describe_signal(int signal) {
  const char* name = ::sigabbrev_np(signal);
  return name != nullptr ? std::to_string(signal) + " (SIG" + name + ")" : std::to_string(signal);
}

}  // namespace hvmm::daemon
