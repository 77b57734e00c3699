// Integration tests of `hvmm` argument handling: every bad argument fails before a VM is
// made, with status 120 and a message naming the argument; help documents every option.
#include <gtest/gtest.h>

#include "hvmm/vmm/exit_status.h"
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

// Invalid arguments exit 120 with a message naming the argument, and print nothing on stdout.
TEST(Cli, BadArgumentsFailBeforeVm) {
  std::vector<BadArgument> cases = {
      {{"--memory", "0"}, "--memory 0: must be between 2M and 256G"},
      {{"--memory", "1T"}, "--memory 1T: must be between 2M and 256G"},
      {{"--memory", "12X"}, "--memory: '12X' has an unknown size suffix"},
      {{"--vcpus", "0"}, "--vcpus 0: must be between 1 and"},
      {{"--vcpus", "100000"}, "--vcpus 100000: must be between 1 and"},
      {{"--kernel", "/nonexistent.elf"}, "cannot open --kernel '/nonexistent.elf'"},
      {{"--kernel", HVMM_BINARY}, "invalid kernel: ELF type 3 is not an executable"},
      {{"--kernel", guest("hello"), "--initrd", "/nonexistent.img"}, "cannot open --initrd"},
      {{"--kernel", guest("hello"), "--memory", "1M"}, "--memory 1M"},
      {{"--cmdline", std::string(5000, 'x')}, "--cmdline is 5000 bytes long"},
      {{"--no-such-option"}, "no-such-option"},
  };
  for (const BadArgument& bad : cases) {
    std::vector<std::string> args{"run"};
    args.insert(args.end(), bad.args.begin(), bad.args.end());
    RunResult run = run_hvmm(args);
    EXPECT_EQ(run.status, kExitBadArguments) << bad.message;
    EXPECT_NE(run.err.find(bad.message), std::string::npos) << run.err;
    EXPECT_EQ(run.out, "") << bad.message;
  }
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
  for (const char* option : {"--kernel", "--initrd", "--cmdline", "--memory", "--vcpus",
                             "--fault-log", "--console-log"}) {
    EXPECT_NE(run.out.find(option), std::string::npos) << option << " missing from\n" << run.out;
  }
}

// A missing subcommand is an argument error.
TEST(Cli, MissingSubcommand) {
  RunResult run = run_hvmm({});
  EXPECT_EQ(run.status, kExitBadArguments);
}

}  // namespace
}  // namespace hvmm::vmm
