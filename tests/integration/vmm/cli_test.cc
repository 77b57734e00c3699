// Integration tests of `hvmm` argument handling: every bad argument fails before /dev/kvm is
// opened, with status 120 and a message naming the argument; files that would hang or crash
// hvmm (FIFOs, devices, huge sparse files) are refused at once; help documents every option
// and every exit status. None of them needs KVM.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "hvmm/vmm/machine/exit_status.h"
#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

using testing::guest;
using testing::run_hvmm;
using testing::RunResult;

// Each bad argument and the text its message must contain.
struct BadArgument {
  std::vector<std::string> args;
  std::string message;
};

// Files the bad-argument cases name: a FIFO without reader or writer, a 1 TiB sparse file.
struct BadFiles {
  BadFiles() {
    EXPECT_EQ(::mkfifo(fifo.path.c_str(), 0600), 0);
    int fd = ::open(sparse.path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    EXPECT_EQ(::ftruncate(fd, int64_t{1} << 40), 0);
    ::close(fd);
  }
  testing::TempPath fifo{"fifo"};
  testing::TempPath sparse{"sparse-1T"};
};

// Every bad argument and the text its message must contain.
std::vector<BadArgument> bad_argument_cases(const BadFiles& files) {
  const std::string& fifo = files.fifo.path;
  const std::string& sparse = files.sparse.path;
  const std::string too_big =
      "' is 1099511627776 bytes (1T), larger than the guest's RAM of 134217728 bytes (128M)";
  return {
      {{"--memory", "0"}, "--memory 0: must be between 2M and 256G"},
      {{"--memory", "1T"}, "--memory 1T: must be between 2M and 256G"},
      {{"--memory", "12X"}, "--memory: '12X' has an unknown size suffix"},
      {{"--vcpus", "0"}, "--vcpus 0: must be between 1 and"},
      {{"--vcpus", "100000"}, "--vcpus 100000: must be between 1 and"},
      {{"--kernel", "/nonexistent.elf"}, "--kernel: cannot open '/nonexistent.elf'"},
      {{"--kernel", HVMM_BINARY}, "invalid kernel: ELF type 3 is not an executable"},
      {{"--kernel", guest("hello"), "--initrd", "/nonexistent.img"}, "--initrd: cannot open"},
      {{"--kernel", guest("hello"), "--memory", "1M"}, "--memory 1M"},
      {{"--cmdline", std::string(5000, 'x')}, "--cmdline: 5000 bytes long"},
      {{"--no-such-option"}, "no-such-option"},
      {{"--initrd", sparse}, "--initrd '" + sparse + too_big},
      {{"--kernel", sparse}, "--kernel '" + sparse + too_big},
      {{"--kernel", fifo}, "--kernel '" + fifo + "' is a FIFO (named pipe), not a regular file"},
      {{"--initrd", fifo}, "--initrd '" + fifo + "' is a FIFO (named pipe), not a regular file"},
      {{"--initrd", "/dev/zero"}, "--initrd '/dev/zero' is a character device"},
      {{"--kernel", "/dev/null"}, "--kernel '/dev/null' is a character device"},
      {{"--kernel", "/tmp"}, "--kernel '/tmp' is a directory"},
      {{"--console-log", fifo}, "--console-log '" + fifo + "' is a FIFO with no reader"},
      {{"--fault-log", fifo}, "--fault-log '" + fifo + "' is a FIFO with no reader"},
      {{"--fault-log", "/nonexistent/dir/faults.log"},
       "--fault-log: cannot open '/nonexistent/dir/faults.log'"},
      {{"--console-log", "/nonexistent/dir/console.log"},
       "--console-log: cannot open '/nonexistent/dir/console.log'"},
      {{"--console-log", "/dev/zero"}, "--console-log '/dev/zero' is a character device (1:5)"},
      {{"--fault-log", "/tmp"}, "--fault-log '/tmp' is a directory"},
      {{"--console-log", "c.log", "--console-log-max", "lots"},
       "--console-log-max: 'lots' is not a size"},
      {{"--console-log-max", "1M"}, "--console-log-max requires --console-log"},
      {{"--reclaim", "cold=0"}, "--reclaim: reclaim policy: cold=0: must be at least 1 epoch"},
      {{"--reclaim", "target=64M,speed=3"}, "--reclaim: reclaim policy: unknown key 'speed'"},
      {{"--reclaim", "cold=3", "--userfaultfd", "off"}, "--reclaim: needs userfaultfd on"},
      {{"--reclaim-swap", "swap.bin"}, "--reclaim-swap swap.bin: needs --reclaim"},
      {{"--dirty-tracking", "sometimes"}, "--dirty-tracking sometimes: must be log or ring"},
      {{"--reclaim", "dirty=log", "--dirty-tracking", "ring"},
       "--dirty-tracking ring: contradicts the dirty=log of --reclaim"},
  };
}

// `run` followed by the case's arguments.
std::vector<std::string> run_args(const BadArgument& bad) {
  std::vector<std::string> args{"run"};
  args.insert(args.end(), bad.args.begin(), bad.args.end());
  return args;
}

// Invalid arguments exit 120 at once (no FIFO makes hvmm wait, no huge file makes it
// allocate) with a message naming the argument, and print nothing on stdout.
TEST(Cli, BadArgumentsFailBeforeVm) {
  BadFiles files;
  for (const BadArgument& bad : bad_argument_cases(files)) {
    RunResult run = run_hvmm(run_args(bad), std::chrono::seconds(10));
    EXPECT_FALSE(run.timed_out) << bad.message;
    EXPECT_EQ(run.status, kExitBadArguments) << bad.message;
    EXPECT_NE(run.err.find(bad.message), std::string::npos) << run.err;
    EXPECT_EQ(run.out, "") << bad.message;
  }
}

// No argument error opens /dev/kvm first: under strace, not one open of it is traced.
TEST(Cli, ArgumentErrorsComeBeforeKvm) {
  if (::access("/usr/bin/strace", X_OK) != 0) {
    GTEST_SKIP() << "strace is not installed (apt-get install strace)";
  }
  BadFiles files;
  testing::TempPath trace("strace");
  for (const BadArgument& bad : bad_argument_cases(files)) {
    // timeout(1) runs under strace too, so an hvmm that hangs is killed even when strace is
    // (a killed strace leaves its tracee running).
    std::vector<std::string> argv{
        "/usr/bin/strace",  "-f", "-qq",  "-e", "trace=open,openat", "-o", trace.path,
        "/usr/bin/timeout", "-s", "KILL", "10", HVMM_BINARY};
    auto args = run_args(bad);
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult run = ::hvmm::testing::run_process(argv, std::chrono::seconds(20));
    EXPECT_EQ(run.status, kExitBadArguments) << bad.message << "\n" << run.err;
    std::string traced = testing::slurp(trace.path);
    EXPECT_NE(traced.find("open"), std::string::npos) << "strace traced nothing";
    EXPECT_EQ(traced.find("/dev/kvm"), std::string::npos) << bad.message << "\n" << traced;
  }
}

// The log kinds hvmm accepts pass validation: /dev/null, a FIFO with a reader, a regular
// file. Without KVM the run then stops at 121 (never 120); with KVM the hello guest exits 0.
TEST(Cli, AcceptedLogKindsPassValidation) {
  testing::TempPath fifo("fifo-with-reader");
  ASSERT_EQ(::mkfifo(fifo.path.c_str(), 0600), 0);
  int reader = ::open(fifo.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  testing::TempPath file("console.log");
  for (const std::string& log : {std::string("/dev/null"), fifo.path, file.path}) {
    RunResult run = run_hvmm({"run", "--kernel", guest("hello"), "--console-log", log,
                              "--fault-log", log == file.path ? "/dev/null" : log},
                             std::chrono::seconds(20));
    EXPECT_FALSE(run.timed_out) << log;
    int expected = testing::kvm_unavailable_reason().empty() ? 0 : kExitSetupFailed;
    EXPECT_EQ(run.status, expected) << log << "\n" << run.err;
  }
  ::close(reader);
}

// Without KVM, a valid run is a setup failure the VMM announces in exactly one last line.
TEST(Cli, KvmUnavailableAnnouncedOnce) {
  if (testing::kvm_unavailable_reason().empty()) {
    GTEST_SKIP() << "/dev/kvm opens here, so this setup failure cannot be produced";
  }
  RunResult run = run_hvmm({"run", "--kernel", guest("hello")});
  EXPECT_EQ(run.status, kExitSetupFailed);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err.rfind("hvmm: VM ended by the VMM: KVM unavailable: ", 0), 0u) << run.err;
  size_t first = run.err.find("VM ended by the VMM");
  EXPECT_EQ(run.err.find("VM ended by the VMM", first + 1), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("(exit status 121)\n"), std::string::npos) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
}

// `hvmm --version` prints the project's version and exits 0.
TEST(Cli, Version) {
  RunResult run = run_hvmm({"--version"});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, std::string("hvmm ") + HVMM_VERSION + "\n");
}

// A kernel file that is text is refused as not ELF.
TEST(Cli, TextKernelRefused) {
  testing::TempPath text("kernel.txt");
  {
    std::ofstream file(text.path);
    file << "not a kernel\n";
  }
  RunResult run = run_hvmm({"run", "--kernel", text.path});
  EXPECT_EQ(run.status, kExitBadArguments);
  EXPECT_NE(run.err.find("not an ELF file"), std::string::npos) << run.err;
}

// `hvmm --help` lists the run subcommand and exits 0.
TEST(Cli, TopLevelHelp) {
  RunResult run = run_hvmm({"--help"});
  EXPECT_EQ(run.status, 0);
  EXPECT_NE(run.out.find("run"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("Exit status"), std::string::npos) << run.out;
}

// `hvmm run --help` documents every option.
TEST(Cli, RunHelpDocumentsEveryOption) {
  RunResult run = run_hvmm({"run", "--help"});
  EXPECT_EQ(run.status, 0);
  for (const char* option :
       {"--kernel", "--initrd", "--cmdline", "--memory", "--vcpus", "--fault-log", "--console-log",
        "--console-log-max", "--dirty-tracking"}) {
    EXPECT_NE(run.out.find(option), std::string::npos) << option << " missing from\n" << run.out;
  }
}

// Both helps end with the exit-status table, generated from kExitStatuses.
TEST(Cli, HelpListsEveryExitStatus) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--help"}, std::vector<std::string>{"run", "--help"}}) {
    RunResult run = run_hvmm(args);
    EXPECT_EQ(run.status, 0);
    EXPECT_NE(run.out.find(exit_status_help()), std::string::npos) << run.out;
    for (const ExitStatusInfo& info : kExitStatuses) {
      EXPECT_NE(run.out.find(std::string(info.meaning)), std::string::npos) << info.meaning;
    }
  }
}

// A missing subcommand is an argument error.
TEST(Cli, MissingSubcommand) {
  RunResult run = run_hvmm({});
  EXPECT_EQ(run.status, kExitBadArguments);
}

}  // namespace
}  // namespace hvmm::vmm
