// Subprocess: a program the end-to-end tests run (hvmmd, the CLI), in a process group of its
// own with stdin from /dev/null and stdout and stderr appended to one file. posix_spawn, not
// fork: the test process has gRPC threads, and only exec is safe in a child of those.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "hvmm/base/result.h"

namespace hvmm::e2e {

// How a process ended.
struct ExitStatus {
  std::optional<int> code;    // exit(code)
  std::optional<int> signal;  // killed by this signal
  // "exit status N" or "killed by signal N".
  std::string describe() const;
};

class Subprocess {
 public:
  // Start argv[0] (an absolute path) with argv; output goes to `output_file`.
  static Result<Subprocess> spawn(const std::vector<std::string>& argv,
                                  const std::string& output_file);
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // Kills the whole process group when the process was not waited for.
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // The exit status when the process has ended (reaping it), nullopt while it runs.
  std::optional<ExitStatus> poll();
  // Wait up to `timeout` for the end; nullopt when it still runs after that.
  std::optional<ExitStatus> wait(std::chrono::milliseconds timeout);
  // Send `signal` to the process (not its group).
  void signal(int signal) const;
  // SIGKILL the process group and reap the process.
  ExitStatus kill();

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
  std::optional<ExitStatus> ended_;
};

// Run argv to its end (at most `timeout`, then killed) and return its status and output.
struct CommandResult {
  ExitStatus status;
  bool timed_out = false;
  std::string output;  // stdout and stderr, interleaved
};
Result<CommandResult> run_command(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout);

// The whole contents of a file ("" when it cannot be read).
std::string read_text_file(const std::string& path);

}  // namespace hvmm::e2e
