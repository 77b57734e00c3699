// Tests of `hvmm run` argument parsing and validation: sizes, ranges, files, kernels.
#include "hvmm/vmm/machine/run_options.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
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

// After KVM is open its own limit is checked by itself, still as an argument error.
TEST(RunOptions, ChecksVcpusAgainstKvmLimit) {
  EXPECT_TRUE(check_vcpu_limit(4, 4).ok());
  EXPECT_EQ(check_vcpu_limit(5, 4).error().message,
            "--vcpus 5: must be between 1 and 4 (KVM's limit here is 4)");
  EXPECT_EQ(check_vcpu_limit(256, 1024).error().message,
            "--vcpus 256: must be between 1 and 255 (hvmm's limit is 255)");
  EXPECT_EQ(check_vcpu_limit(0, 1024).error().code, ErrorCode::kInvalidArgument);
}

// A 1 TiB sparse --initrd or --kernel is refused from its size, before a byte is allocated
// (it used to abort with std::bad_alloc).
TEST(RunOptions, RejectsFilesLargerThanRam) {
  TempFile sparse(std::vector<uint8_t>{});
  ASSERT_EQ(::truncate(sparse.path.c_str(), int64_t{1} << 40), 0);
  std::string sizes =
      "is 1099511627776 bytes (1T), larger than the guest's RAM of 134217728 bytes (128M)";
  RunOptions options;
  options.initrd = sparse.path;
  EXPECT_NE(config_error(options).find("--initrd '" + sparse.path + "' " + sizes),
            std::string::npos)
      << config_error(options);
  options.initrd.clear();
  options.kernel = sparse.path;
  EXPECT_NE(config_error(options).find("--kernel '" + sparse.path + "' " + sizes),
            std::string::npos)
      << config_error(options);
}

// An initrd that fits RAM but not the room left below the kernel-free top of low RAM is
// refused from its size too, before it is read.
TEST(RunOptions, RejectsInitrdThatCannotBePlaced) {
  TempFile big(std::vector<uint8_t>{});
  ASSERT_EQ(::truncate(big.path.c_str(), 127 << 20), 0);
  RunOptions options;
  options.initrd = big.path;
  EXPECT_NE(config_error(options).find("--initrd " + big.path + ": "), std::string::npos)
      << config_error(options);
}

// A FIFO as --kernel or --initrd is refused at once instead of hanging in open().
TEST(RunOptions, RejectsFifoInputsWithoutHanging) {
  std::string fifo = fmt::format("/tmp/hvmm-run-options-fifo-{}", ::getpid());
  std::remove(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const char* option : {"--kernel", "--initrd"}) {
    int code = testing::run_with_timeout([&] {
      RunOptions options;
      (std::string(option) == "--kernel" ? options.kernel : options.initrd) = fifo;
      std::string expected =
          fmt::format("{} '{}' is a FIFO (named pipe), not a regular file", option, fifo);
      return config_error(options) == expected ? 0 : 1;
    });
    EXPECT_EQ(code, 0) << option << (code < 0 ? " hung" : " gave another error");
  }
  std::remove(fifo.c_str());
}

// The logs are opened while validating, so their errors are argument errors (status 120)
// found before any VM (or /dev/kvm) exists, and the config carries the open descriptors.
TEST(RunOptions, OpensLogsBeforeAnyVm) {
  TempFile console(std::vector<uint8_t>{'o', 'l', 'd'});
  TempFile faults(std::vector<uint8_t>{'o', 'l', 'd'});
  RunOptions options;
  options.console_log = console.path;
  options.fault_log = faults.path;
  auto config = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(config.ok()) << config.error().message;
  ASSERT_TRUE(config->console_log.has_value());
  ASSERT_TRUE(config->fault_log.has_value());
  EXPECT_TRUE(config->console_log->fd.valid());
  EXPECT_EQ(config->fault_log->kind, LogFileKind::kRegular);
  struct stat info {};
  ASSERT_EQ(::stat(console.path.c_str(), &info), 0);
  EXPECT_EQ(info.st_size, 0) << "the console log is truncated";
  ASSERT_EQ(::stat(faults.path.c_str(), &info), 0);
  EXPECT_EQ(info.st_size, 3) << "the fault log is appended to";

  options.console_log.clear();
  options.fault_log = "/nonexistent/dir/faults.log";
  auto refused = make_machine_config(options, kKernel, 8);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message.find("cannot open --fault-log '/nonexistent/dir/faults.log'"),
            std::string::npos);
}

// A log FIFO without a reader is refused at once for either option.
TEST(RunOptions, RejectsLogFifoWithoutReader) {
  std::string fifo = fmt::format("/tmp/hvmm-run-options-log-fifo-{}", ::getpid());
  std::remove(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const char* option : {"--console-log", "--fault-log"}) {
    int code = testing::run_with_timeout([&] {
      RunOptions options;
      (std::string(option) == "--console-log" ? options.console_log : options.fault_log) = fifo;
      return config_error(options).find(
                 fmt::format("{} '{}' is a FIFO with no reader", option, fifo)) != std::string::npos
                 ? 0
                 : 1;
    });
    EXPECT_EQ(code, 0) << option << (code < 0 ? " hung" : " gave another error");
  }
  std::remove(fifo.c_str());
}

// --console-log-max takes sizes; 0 is no cap; the default is 64M; garbage is named.
TEST(RunOptions, ParsesConsoleLogMax) {
  RunOptions options;
  EXPECT_EQ(make_machine_config(options, kKernel, 8)->console_log_max, kDefaultConsoleLogMax);
  EXPECT_EQ(kDefaultConsoleLogMax, *parse_size(options.console_log_max));
  options.console_log_max = "1K";
  EXPECT_EQ(make_machine_config(options, kKernel, 8)->console_log_max, 1024u);
  options.console_log_max = "0";
  EXPECT_EQ(make_machine_config(options, kKernel, 8)->console_log_max, 0u);
  options.console_log_max = "lots";
  EXPECT_EQ(config_error(options),
            "--console-log-max: 'lots' is not a size (expected a number with an optional K, M or "
            "G suffix)");
}

// --fault-around takes 0 or a power of two from 4K to 2M (default 2M); anything else is an
// argument error naming the option.
TEST(RunOptions, ParsesFaultAround) {
  RunOptions options;
  EXPECT_EQ(make_machine_config(options, kKernel, 8)->faults.fault_around_max, 2u << 20);
  for (const auto& [text, bytes] : std::vector<std::pair<std::string, uint64_t>>{
           {"0", 0}, {"4K", 4096}, {"64K", 65536}, {"2M", 2u << 20}}) {
    options.fault_around = text;
    auto config = make_machine_config(options, kKernel, 8);
    ASSERT_TRUE(config.ok()) << text << ": " << config.error().message;
    EXPECT_EQ(config->faults.fault_around_max, bytes) << text;
  }
  for (const char* bad : {"2K", "12K", "4M", "1G"}) {
    options.fault_around = bad;
    EXPECT_EQ(config_error(options),
              fmt::format("--fault-around {}: must be a power of two from 4K to 2M, or 0 for one "
                          "page per fault (got {} bytes)",
                          bad, *parse_size(bad)));
  }
  options.fault_around = "wide";
  EXPECT_EQ(config_error(options).rfind("--fault-around: 'wide' is not a size", 0), 0u)
      << config_error(options);
}

// --userfaultfd is on by default and takes only on or off.
TEST(RunOptions, ParsesUserfaultfd) {
  RunOptions options;
  EXPECT_TRUE(make_machine_config(options, kKernel, 8)->faults.userfaultfd);
  options.userfaultfd = "off";
  EXPECT_FALSE(make_machine_config(options, kKernel, 8)->faults.userfaultfd);
  options.userfaultfd = "yes";
  EXPECT_EQ(config_error(options), "--userfaultfd yes: must be on or off");
}

// --stats is opened while validating (truncating a regular file); a bad path is named.
TEST(RunOptions, OpensStatsFileBeforeAnyVm) {
  TempFile stats(std::vector<uint8_t>{'o', 'l', 'd'});
  RunOptions options;
  EXPECT_FALSE(make_machine_config(options, kKernel, 8)->stats_file.has_value());
  options.stats = stats.path;
  auto config = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(config.ok()) << config.error().message;
  ASSERT_TRUE(config->stats_file.has_value());
  EXPECT_EQ(config->stats_file->kind, LogFileKind::kRegular);
  struct stat info {};
  ASSERT_EQ(::stat(stats.path.c_str(), &info), 0);
  EXPECT_EQ(info.st_size, 0) << "the stats file is truncated";
  options.stats = "/nonexistent/dir/stats.json";
  EXPECT_NE(config_error(options).find("cannot open --stats '/nonexistent/dir/stats.json'"),
            std::string::npos)
      << config_error(options);
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

// Without --reclaim there is no reclaim; with it the policy is parsed at argument time,
// "" being the default policy.
TEST(RunOptions, ParsesReclaimPolicy) {
  RunOptions options;
  EXPECT_FALSE(make_machine_config(options, kKernel, 8)->reclaim);
  const std::string dir = ::testing::TempDir();
  options.reclaim = "target=64M,period=1s,cold=3";
  options.reclaim_swap = dir + "/run_options_swap.bin";
  auto config = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(config.ok()) << config.error().message;
  ASSERT_TRUE(config->reclaim);
  EXPECT_EQ(config->reclaim->target_bytes, uint64_t{64} << 20);
  EXPECT_EQ(config->reclaim->cold_epochs, 3u);
  ASSERT_TRUE(config->reclaim_swap);
  EXPECT_EQ(config->reclaim_swap->path(), options.reclaim_swap);
  options.reclaim = "";
  options.reclaim_swap.clear();
  auto defaults = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(defaults.ok()) << defaults.error().message;
  ASSERT_TRUE(defaults->reclaim);
  EXPECT_EQ(defaults->reclaim->cold_epochs, 120u);
  EXPECT_FALSE(defaults->reclaim_swap);
}

// --reclaim-swap is opened with the arguments: a FIFO or a device node is an argument error
// naming the flag and the path.
TEST(RunOptions, RejectsASwapFileThatIsNotARegularFile) {
  RunOptions options;
  options.reclaim = "";
  options.reclaim_swap = "/dev/null";
  const std::string error = config_error(options);
  EXPECT_NE(error.find("--reclaim-swap"), std::string::npos) << error;
  EXPECT_NE(error.find("/dev/null"), std::string::npos) << error;
}

// A bad policy is an argument error carrying the parser's message; --reclaim-swap needs
// --reclaim, and --reclaim needs userfaultfd.
TEST(RunOptions, RejectsBadReclaimOptions) {
  RunOptions options;
  options.reclaim = "cold=0";
  EXPECT_EQ(config_error(options), "--reclaim: reclaim policy: cold=0: must be at least 1 epoch");
  options.reclaim = "codec=gzip";
  EXPECT_EQ(config_error(options),
            "--reclaim: reclaim policy: codec=gzip: unknown codec (expected lz4 or zstd)");
  options.reclaim = "cold=3";
  options.userfaultfd = "off";
  EXPECT_EQ(config_error(options),
            "--reclaim: needs --userfaultfd on (reclaimed pages come back through userfaultfd)");
  options = RunOptions{};
  options.reclaim_swap = "swap.bin";
  EXPECT_EQ(config_error(options),
            "--reclaim-swap swap.bin: needs --reclaim (the swap file is behind the reclaim pool)");
}

// The CLI maps every option onto RunOptions.
TEST(RunCli, ParsesEveryOption) {
  auto options = cli::parse_run_arguments(
      {"--kernel",       "k.elf",   "--initrd",          "i.img",  "--cmdline",      "a b",
       "--memory",       "64M",     "--vcpus",           "3",      "--fault-log",    "f.log",
       "--console-log",  "c.log",   "--console-log-max", "1M",     "--fault-around", "64K",
       "--userfaultfd",  "off",     "--stats",           "s.json", "--reclaim",      "cold=3",
       "--reclaim-swap", "swap.bin"});
  ASSERT_TRUE(options.ok()) << options.error().message;
  EXPECT_EQ(options->kernel, "k.elf");
  EXPECT_EQ(options->initrd, "i.img");
  EXPECT_EQ(options->cmdline, "a b");
  EXPECT_EQ(options->memory, "64M");
  EXPECT_EQ(options->vcpus, 3u);
  EXPECT_EQ(options->fault_log, "f.log");
  EXPECT_EQ(options->console_log, "c.log");
  EXPECT_EQ(options->console_log_max, "1M");
  EXPECT_EQ(options->fault_around, "64K");
  EXPECT_EQ(options->userfaultfd, "off");
  EXPECT_EQ(options->stats, "s.json");
  EXPECT_EQ(options->reclaim, "cold=3");
  EXPECT_EQ(options->reclaim_swap, "swap.bin");
}

// --reclaim is absent unless given, and may be given the empty (default) policy.
TEST(RunCli, ReclaimIsOptionalAndMayBeEmpty) {
  EXPECT_FALSE(cli::parse_run_arguments({})->reclaim);
  auto options = cli::parse_run_arguments({"--reclaim", ""});
  ASSERT_TRUE(options.ok()) << options.error().message;
  EXPECT_EQ(options->reclaim, "");
}

// --console-log-max without --console-log is an error (stdout is never capped).
TEST(RunCli, ConsoleLogMaxNeedsConsoleLog) {
  auto options = cli::parse_run_arguments({"--console-log-max", "1M"});
  ASSERT_FALSE(options.ok());
  EXPECT_NE(options.error().message.find("--console-log-max requires --console-log"),
            std::string::npos)
      << options.error().message;
  EXPECT_EQ(cli::parse_run_arguments({})->console_log_max, "64M");
}

// Unknown options and non-numeric vCPU counts are CLI errors.
TEST(RunCli, RejectsUnknownOptionAndBadNumber) {
  EXPECT_FALSE(cli::parse_run_arguments({"--frobnicate"}).ok());
  EXPECT_FALSE(cli::parse_run_arguments({"--vcpus", "many"}).ok());
}

}  // namespace
}  // namespace hvmm::vmm
