// Tests of `hvmm run` argument parsing and validation: sizes, ranges, files, kernels.
#include "hvmm/vmm/run_options.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "hvmm/cli/cli.h"
#include "test_support.h"

namespace hvmm::vmm {
namespace {

// A file in the temp directory that is removed with the object.
struct TempFile {
  explicit TempFile(const std::vector<uint8_t>& contents) {
    char name[] = "/tmp/hvmm-run-options-XXXXXX";
    int fd = mkstemp(name);
    path = name;
    [[maybe_unused]] ssize_t n = write(fd, contents.data(), contents.size());
    close(fd);
  }
  ~TempFile() { std::remove(path.c_str()); }
  std::string path;
};

const std::vector<uint8_t> kKernel = testing::PvhElfBuilder().build();

// The error message of validating `options`, or "" when valid.
std::string config_error(const RunOptions& options, unsigned max_vcpus = 8) {
  auto config = make_machine_config(options, kKernel, max_vcpus);
  return config ? "" : config.error().message;
}

// Sizes accept plain bytes and binary K/M/G suffixes in either case.
TEST(RunOptions, ParsesSizes) {
  EXPECT_EQ(*parse_size("4096"), 4096u);
  EXPECT_EQ(*parse_size("64K"), 64u << 10);
  EXPECT_EQ(*parse_size("128M"), 128u << 20);
  EXPECT_EQ(*parse_size("128m"), 128u << 20);
  EXPECT_EQ(*parse_size("2G"), uint64_t{2} << 30);
  EXPECT_EQ(*parse_size("1GiB"), uint64_t{1} << 30);
}

// Garbage, unknown suffixes and overflow are errors that quote the text.
TEST(RunOptions, RejectsBadSizes) {
  EXPECT_NE(parse_size("").error().message.find("is not a size"), std::string::npos);
  EXPECT_NE(parse_size("M").error().message.find("is not a size"), std::string::npos);
  EXPECT_NE(parse_size("12X").error().message.find("unknown size suffix 'X'"), std::string::npos);
  EXPECT_NE(parse_size("-5M").error().message.find("is not a size"), std::string::npos);
  EXPECT_NE(parse_size("99999999999999G").error().message.find("too large"), std::string::npos);
}

// Defaults with the bundled kernel make a valid 128 MiB, one-vCPU config.
TEST(RunOptions, DefaultsAreValid) {
  auto config = make_machine_config(RunOptions{}, kKernel, 8);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->memory_size, 128u << 20);
  EXPECT_EQ(config->vcpus, 1u);
  EXPECT_EQ(config->kernel, kKernel);
}

// Zero, tiny, absurd and unaligned memory sizes are refused naming --memory.
TEST(RunOptions, RejectsBadMemory) {
  for (const char* memory : {"0", "1M", "1T", "300G", "12345", "lots"}) {
    RunOptions options;
    options.memory = memory;
    EXPECT_NE(config_error(options).find("--memory"), std::string::npos) << memory;
  }
}

// vCPU counts must be 1..KVM's limit.
TEST(RunOptions, RejectsBadVcpuCount) {
  RunOptions options;
  options.vcpus = 0;
  EXPECT_NE(config_error(options).find("--vcpus 0"), std::string::npos);
  options.vcpus = 9;
  EXPECT_NE(config_error(options, 8).find("--vcpus 9: must be between 1 and 8"), std::string::npos);
  options.vcpus = 8;
  EXPECT_EQ(config_error(options, 8), "");
}

// A missing kernel or initrd file is named with the option.
TEST(RunOptions, RejectsMissingFiles) {
  RunOptions options;
  options.kernel = "/nonexistent/kernel.elf";
  EXPECT_NE(config_error(options).find("cannot open --kernel '/nonexistent/kernel.elf'"),
            std::string::npos);
  options.kernel.clear();
  options.initrd = "/nonexistent/initrd";
  EXPECT_NE(config_error(options).find("cannot open --initrd"), std::string::npos);
}

// A file that is not a PVH kernel is refused before any VM exists.
TEST(RunOptions, RejectsInvalidKernelFile) {
  TempFile text(std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o'});
  RunOptions options;
  options.kernel = text.path;
  EXPECT_NE(config_error(options).find("not an ELF file"), std::string::npos);
}

// A kernel that does not fit the requested memory is refused naming the placement.
TEST(RunOptions, RejectsKernelOutsideMemory) {
  testing::PvhElfBuilder builder;
  builder.segments.push_back({64 << 20, {1}, 0x1000});
  TempFile kernel(builder.build());
  RunOptions options;
  options.kernel = kernel.path;
  options.memory = "32M";
  EXPECT_NE(config_error(options).find("outside guest RAM"), std::string::npos);
  options.memory = "128M";
  EXPECT_EQ(config_error(options), "");
}

// A readable initrd is read into the config.
TEST(RunOptions, ReadsInitrd) {
  TempFile initrd(std::vector<uint8_t>{1, 2, 3});
  RunOptions options;
  options.initrd = initrd.path;
  auto config = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(config.ok()) << config.error().message;
  ASSERT_TRUE(config->initrd.has_value());
  EXPECT_EQ(*config->initrd, (std::vector<uint8_t>{1, 2, 3}));
}

// Too long a command line is refused before anything else is read.
TEST(RunOptions, RejectsLongCommandLine) {
  RunOptions options;
  options.cmdline = std::string(5000, 'a');
  EXPECT_NE(config_error(options).find("--cmdline is 5000 bytes long"), std::string::npos);
}

// The CLI maps every option onto RunOptions.
TEST(RunCli, ParsesEveryOption) {
  auto options = cli::parse_run_arguments({"--kernel", "k.elf", "--initrd", "i.img", "--cmdline",
                                           "a b", "--memory", "64M", "--vcpus", "3", "--fault-log",
                                           "f.log", "--console-log", "c.log"});
  ASSERT_TRUE(options.ok()) << options.error().message;
  EXPECT_EQ(options->kernel, "k.elf");
  EXPECT_EQ(options->initrd, "i.img");
  EXPECT_EQ(options->cmdline, "a b");
  EXPECT_EQ(options->memory, "64M");
  EXPECT_EQ(options->vcpus, 3u);
  EXPECT_EQ(options->fault_log, "f.log");
  EXPECT_EQ(options->console_log, "c.log");
}

// Unknown options and non-numeric vCPU counts are CLI errors.
TEST(RunCli, RejectsUnknownOptionAndBadNumber) {
  EXPECT_FALSE(cli::parse_run_arguments({"--frobnicate"}).ok());
  EXPECT_FALSE(cli::parse_run_arguments({"--vcpus", "many"}).ok());
}

}  // namespace
}  // namespace hvmm::vmm
