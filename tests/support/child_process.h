// Test support shared by the integration tests: run a program as a child process with its
// output captured, and tell why KVM tests cannot run. Header-only, host tests only.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace hvmm::testing {

// The reason KVM tests cannot run here, or "" when /dev/kvm opens.
inline std::string kvm_unavailable_reason() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return std::string("/dev/kvm cannot be opened: ") + std::strerror(errno);
  }
  ::close(fd);
  return "";
}

// A unique temporary path, removed by the destructor.
struct TempPath {
  explicit TempPath(const std::string& tag) {
    static int counter = 0;
    path = "/tmp/hvmm-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
           tag;
  }
  ~TempPath() { std::remove(path.c_str()); }
  TempPath(const TempPath&) = delete;
  TempPath& operator=(const TempPath&) = delete;
  std::string path;
};

// Whole contents of a file ("" when missing).
inline std::string slurp(const std::string& path) {
  std::ifstream file(path);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

// The outcome of one child process.
struct RunResult {
  int status = -1;  // exit status, or 128 + signal
  int signal = 0;   // the signal that ended it, when one did (SIGKILL after a timeout)
  std::string out;  // stdout (and stderr, when merged)
  std::string err;  // stderr, unless merged into out
  bool timed_out = false;
};

// ChildProcess runs argv[0] with argv, stdin from /dev/null and stdout/stderr captured to
// files (stderr into stdout's file when `merge_stderr`); `fd3`, when given, becomes the
// child's descriptor 3 (dup2 clears FD_CLOEXEC, so only that copy survives the exec). Killed
// when destroyed unreaped.
class ChildProcess {
 public:
  explicit ChildProcess(std::vector<std::string> argv, bool merge_stderr = false, int fd3 = -1)
      : out_("stdout"), err_("stderr") {
    std::vector<char*> pointers;
    for (std::string& arg : argv) {
      pointers.push_back(arg.data());
    }
    pointers.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      int in = ::open("/dev/null", O_RDONLY);
      int o = ::open(out_.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = merge_stderr ? o : ::open(err_.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(in, 0);
      ::dup2(o, 1);
      ::dup2(e, 2);
      if (fd3 >= 0) {
        ::dup2(fd3, 3);
      }
      ::execv(pointers[0], pointers.data());
      ::_exit(127);
    }
  }
  ~ChildProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool reaped() const { return reaped_; }
  std::string stdout_so_far() const { return slurp(out_.path); }

  // Wait up to `timeout` for stdout to contain `text`.
  bool wait_for_output(const std::string& text, std::chrono::seconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (stdout_so_far().find(text) != std::string::npos) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  // Wait up to `timeout` for the exit (killing it after), and collect the outcome.
  RunResult wait(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    RunResult result;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int wstatus = 0;
    while (::waitpid(pid_, &wstatus, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        result.timed_out = true;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &wstatus, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    reaped_ = true;
    result.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    result.signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
    result.out = slurp(out_.path);
    result.err = slurp(err_.path);
    return result;
  }

 private:
  TempPath out_;
  TempPath err_;
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// Run argv to its exit (at most `timeout`) and return what it did.
inline RunResult run_process(std::vector<std::string> argv, std::chrono::seconds timeout,
                             bool merge_stderr = false) {
  ChildProcess process(std::move(argv), merge_stderr);
  return process.wait(timeout);
}

}  // namespace hvmm::testing
