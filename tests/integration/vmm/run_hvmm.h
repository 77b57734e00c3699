// Helpers of the vmm integration tests: run the real `hvmm` binary and capture its output,
// and skip (saying why) when /dev/kvm cannot be opened.
#pragma once

#include <fcntl.h>
#include <poll.h>
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

namespace hvmm::vmm::testing {

// The reason KVM tests cannot run here, or "" when /dev/kvm opens.
inline std::string kvm_unavailable_reason() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return std::string("/dev/kvm cannot be opened: ") + std::strerror(errno);
  }
  ::close(fd);
  return "";
}

#define HVMM_SKIP_WITHOUT_KVM()                                          \
  do {                                                                   \
    std::string reason = ::hvmm::vmm::testing::kvm_unavailable_reason(); \
    if (!reason.empty()) {                                               \
      GTEST_SKIP() << reason;                                            \
    }                                                                    \
  } while (false)

// The path of a test guest ELF.
inline std::string guest(const std::string& name) {
  return std::string(HVMM_GUEST_DIR) + "/" + name + ".elf";
}

// A unique temporary path, removed by the destructor.
struct TempPath {
  explicit TempPath(const std::string& tag) {
    static int counter = 0;
    path =
        "/tmp/hvmm-it-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + tag;
  }
  ~TempPath() { std::remove(path.c_str()); }
  std::string path;
};

// Whole contents of a file ("" when missing).
inline std::string slurp(const std::string& path) {
  std::ifstream file(path);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

// The outcome of one hvmm run.
struct RunResult {
  int status = -1;  // exit status, or 128 + signal
  std::string out;
  std::string err;
  bool timed_out = false;
};

// HvmmProcess is one running `hvmm` with stdout and stderr captured to files.
class HvmmProcess {
 public:
  // Start `hvmm args...` with stdin from /dev/null.
  explicit HvmmProcess(const std::vector<std::string>& args) : out_("stdout"), err_("stderr") {
    std::vector<std::string> storage{HVMM_BINARY};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : storage) {
      argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      int in = ::open("/dev/null", O_RDONLY);
      int o = ::open(out_.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(err_.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(in, 0);
      ::dup2(o, 1);
      ::dup2(e, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~HvmmProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  pid_t pid() const { return pid_; }
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
  RunResult wait(std::chrono::seconds timeout = std::chrono::seconds(60)) {
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

// Run `hvmm args...` with stdin from /dev/null, wait up to `timeout`, capture everything.
inline RunResult run_hvmm(const std::vector<std::string>& args,
                          std::chrono::seconds timeout = std::chrono::seconds(60)) {
  HvmmProcess process(args);
  return process.wait(timeout);
}

}  // namespace hvmm::vmm::testing
