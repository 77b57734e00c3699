// Subprocess (subprocess.h).
#include "subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "hvmm/daemon/common/spawn_setup.h"

extern char** environ;

namespace hvmm::e2e {

std::string ExitStatus::describe() const {
  if (signal) {
    return "killed by signal " + std::to_string(*signal);
  }
  return "exit status " + std::to_string(code.value_or(-1));
}

namespace {

ExitStatus decode(int wstatus) {
  ExitStatus status;
  if (WIFEXITED(wstatus)) {
    status.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    status.signal = WTERMSIG(wstatus);
  }
  return status;
}

}  // namespace

Result<Subprocess> Subprocess::spawn(const std::vector<std::string>& argv,
                                     const std::string& output_file) {
  if (argv.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "spawn: no program");
  }
  daemon::SpawnSetup setup;
  // A group of its own: the destructor kills what it started too (VM processes of a daemon).
  posix_spawnattr_setpgroup(&setup.attributes, 0);
  // Default dispositions for the signals the tests send: a test started in the background by
  // a non-interactive shell (the nested-KVM guest's init) inherits SIGINT and SIGQUIT ignored.
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int signal : {SIGINT, SIGQUIT, SIGTERM, SIGHUP}) {
    sigaddset(&defaults, signal);
  }
  posix_spawnattr_setsigdefault(&setup.attributes, &defaults);
  posix_spawnattr_setflags(&setup.attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
  posix_spawn_file_actions_addopen(&setup.actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&setup.actions, 1, output_file.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&setup.actions, 1, 2);
  std::vector<char*> pointers;
  for (const std::string& arg : argv) {
    pointers.push_back(const_cast<char*>(arg.c_str()));
  }
  pointers.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0].c_str(), &setup.actions, &setup.attributes,
                             pointers.data(), environ);
  if (rc != 0) {
    return make_error(ErrorCode::kInternal, "cannot start {}: {}", argv[0], std::strerror(rc));
  }
  return Subprocess(pid);
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), ended_(std::move(other.ended_)) {}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !ended_) {
      kill();
    }
    pid_ = std::exchange(other.pid_, -1);
    ended_ = std::move(other.ended_);
  }
  return *this;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !ended_) {
    kill();
  }
}

std::optional<ExitStatus> Subprocess::poll() {
  if (ended_ || pid_ <= 0) {
    return ended_;
  }
  int wstatus = 0;
  if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
    ended_ = decode(wstatus);
  }
  return ended_;
}

std::optional<ExitStatus> Subprocess::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!poll() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return ended_;
}

void Subprocess::signal(int signal) const {
  if (pid_ > 0 && !ended_) {
    ::kill(pid_, signal);
  }
}

ExitStatus Subprocess::kill() {
  if (!ended_ && pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    int wstatus = 0;
    while (::waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
    }
    ended_ = decode(wstatus);
  }
  return ended_.value_or(ExitStatus{});
}

std::string read_text_file(const std::string& path) {
  std::ifstream file(path);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

Result<CommandResult> run_command(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout) {
  char output_path[] = "/tmp/hvmm-e2e-output-XXXXXX";
  const int fd = ::mkstemp(output_path);
  if (fd < 0) {
    return make_error(ErrorCode::kInternal, "mkstemp: {}", std::strerror(errno));
  }
  ::close(fd);
  auto process = Subprocess::spawn(argv, output_path);
  if (!process) {
    ::unlink(output_path);
    return process.error();
  }
  CommandResult result;
  auto status = process->wait(timeout);
  if (!status) {
    result.timed_out = true;
    status = process->kill();
  }
  result.status = *status;
  result.output = read_text_file(output_path);
  ::unlink(output_path);
  return result;
}

}  // namespace hvmm::e2e
