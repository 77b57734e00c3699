// Helpers of the vmm integration tests: run the real `hvmm` binary and capture its output,
// and skip (saying why) when /dev/kvm cannot be opened.
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

// Run `hvmm args...` with stdin from /dev/null, wait up to `timeout`, capture everything.
inline RunResult run_hvmm(const std::vector<std::string>& args,
                          std::chrono::seconds timeout = std::chrono::seconds(60)) {
  TempPath out("stdout");
  TempPath err("stderr");
  std::vector<std::string> argv_storage{HVMM_BINARY};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_storage) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int in = ::open("/dev/null", O_RDONLY);
    int o = ::open(out.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(err.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(in, 0);
    ::dup2(o, 1);
    ::dup2(e, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  RunResult result;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &wstatus, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  result.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  result.out = slurp(out.path);
  result.err = slurp(err.path);
  return result;
}

}  // namespace hvmm::vmm::testing
