// Tests of VmOptions validation: sizes, ranges, files, kernels, logs and reclaim, each error
// starting with the field it is about.
#include "hvmm/daemon/options/vm_options.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "test_support.h"

namespace hvmm::daemon {
namespace {

// A file in the temp directory that is removed with the object.
struct TempFile {
  explicit TempFile(const std::vector<uint8_t>& contents) {
    char name[] = "/tmp/hvmm-vm-options-XXXXXX";
    int fd = mkstemp(name);
    path = name;
    [[maybe_unused]] ssize_t n = write(fd, contents.data(), contents.size());
    close(fd);
  }
  ~TempFile() { std::remove(path.c_str()); }
  std::string path;
};

using vmm::kDefaultConsoleLogMax;
using vmm::LogFileKind;
namespace testing = vmm::testing;

const std::vector<uint8_t> kKernel = testing::PvhElfBuilder().build();

// The error message of validating `options`, or "" when valid.
std::string config_error(const VmOptions& options, unsigned max_vcpus = 8) {
  auto config = make_machine_config(options, kKernel, max_vcpus);
  return config ? "" : config.error().message;
}

// Defaults with the bundled kernel make a valid 128 MiB, one-vCPU config named "run".
TEST(VmOptions, DefaultsAreValid) {
  auto config = make_machine_config(VmOptions{}, kKernel, 8);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->memory_size, 128u << 20);
  EXPECT_EQ(config->vcpus, 1u);
  EXPECT_EQ(config->kernel, kKernel);
  EXPECT_EQ(config->name, "run");
  EXPECT_FALSE(config->dirty_tracking);
}

// The name is carried into the config (logs and fault records use it).
TEST(VmOptions, CarriesTheName) {
  VmOptions options{};
  options.name = "web-1";
  EXPECT_EQ(make_machine_config(options, kKernel, 8)->name, "web-1");
}

// Zero, tiny, absurd and unaligned memory sizes are refused naming memory_bytes first.
TEST(VmOptions, RejectsBadMemory) {
  for (uint64_t memory : {uint64_t{0}, uint64_t{1} << 20, uint64_t{1} << 40, uint64_t{300} << 30,
                          uint64_t{12345}, uint64_t{4096}, UINT64_MAX}) {
    VmOptions options;
    options.memory_bytes = memory;
    EXPECT_EQ(config_error(options).rfind("memory_bytes: must be ", 0), 0u) << memory;
  }
  VmOptions options{};
  options.memory_bytes = 4096;
  EXPECT_EQ(config_error(options), "memory_bytes: must be between 2M and 256G (got 4096 bytes)");
  options.memory_bytes = (uint64_t{64} << 20) + 512;
  EXPECT_EQ(config_error(options), "memory_bytes: must be a multiple of 4K (got 67109376 bytes)");
  options.memory_bytes = uint64_t{256} << 30;
  EXPECT_EQ(config_error(options), "");
}

// vCPU counts must be 1..KVM's limit.
TEST(VmOptions, RejectsBadVcpuCount) {
  VmOptions options{};
  options.vcpus = 0;
  EXPECT_EQ(config_error(options).rfind("vcpus: must be between 1 and 8", 0), 0u);
  options.vcpus = 9;
  EXPECT_EQ(config_error(options, 8),
            "vcpus: must be between 1 and 8 (KVM's limit here is 8; got 9)");
  options.vcpus = 8;
  EXPECT_EQ(config_error(options, 8), "");
}

// After KVM is open its own limit is checked by itself, still as an argument error.
TEST(VmOptions, ChecksVcpusAgainstKvmLimit) {
  EXPECT_TRUE(check_vcpu_limit(4, 4).ok());
  EXPECT_EQ(check_vcpu_limit(5, 4).error().message,
            "vcpus: must be between 1 and 4 (KVM's limit here is 4; got 5)");
  EXPECT_EQ(check_vcpu_limit(256, 1024).error().message,
            "vcpus: must be between 1 and 255 (hvmm's limit is 255; got 256)");
  EXPECT_EQ(check_vcpu_limit(0, 1024).error().code, ErrorCode::kInvalidArgument);
}

// A 1 TiB sparse initrd or kernel is refused from its size, before a byte is allocated
// (it used to abort with std::bad_alloc).
TEST(VmOptions, RejectsFilesLargerThanRam) {
  TempFile sparse(std::vector<uint8_t>{});
  ASSERT_EQ(::truncate(sparse.path.c_str(), int64_t{1} << 40), 0);
  std::string sizes =
      "is 1099511627776 bytes (1T), larger than the guest's RAM of 134217728 bytes (128M)";
  VmOptions options{};
  options.initrd = sparse.path;
  EXPECT_EQ(config_error(options).rfind("initrd: '" + sparse.path + "' " + sizes, 0), 0u)
      << config_error(options);
  options.initrd.clear();
  options.kernel = sparse.path;
  EXPECT_EQ(config_error(options).rfind("kernel: '" + sparse.path + "' " + sizes, 0), 0u)
      << config_error(options);
}

// An initrd that fits RAM but not the room left below the kernel-free top of low RAM is
// refused from its size too, before it is read.
TEST(VmOptions, RejectsInitrdThatCannotBePlaced) {
  TempFile big(std::vector<uint8_t>{});
  ASSERT_EQ(::truncate(big.path.c_str(), 127 << 20), 0);
  VmOptions options{};
  options.initrd = big.path;
  EXPECT_EQ(config_error(options).rfind("initrd: '" + big.path + "': initrd of ", 0), 0u)
      << config_error(options);
}

// A FIFO as kernel or initrd is refused at once instead of hanging in open().
TEST(VmOptions, RejectsFifoInputsWithoutHanging) {
  std::string fifo = fmt::format("/tmp/hvmm-vm-options-fifo-{}", ::getpid());
  std::remove(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const char* field : {"kernel", "initrd"}) {
    int code = testing::run_with_timeout([&] {
      VmOptions options;
      (std::string(field) == "kernel" ? options.kernel : options.initrd) = fifo;
      std::string expected =
          fmt::format("{}: '{}' is a FIFO (named pipe), not a regular file", field, fifo);
      return config_error(options) == expected ? 0 : 1;
    });
    EXPECT_EQ(code, 0) << field << (code < 0 ? " hung" : " gave another error");
  }
  std::remove(fifo.c_str());
}

// The logs are opened while validating, so their errors are argument errors (status 120)
// found before any VM (or /dev/kvm) exists, and the config carries the open descriptors.
TEST(VmOptions, OpensLogsBeforeAnyVm) {
  TempFile console(std::vector<uint8_t>{'o', 'l', 'd'});
  TempFile faults(std::vector<uint8_t>{'o', 'l', 'd'});
  VmOptions options{};
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
  EXPECT_EQ(refused.error().message.rfind(
                "fault_log: cannot open '/nonexistent/dir/faults.log': No such file", 0),
            0u)
      << refused.error().message;
}

// A log FIFO without a reader is refused at once for either log.
TEST(VmOptions, RejectsLogFifoWithoutReader) {
  std::string fifo = fmt::format("/tmp/hvmm-vm-options-log-fifo-{}", ::getpid());
  std::remove(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const char* field : {"console_log", "fault_log"}) {
    int code = testing::run_with_timeout([&] {
      VmOptions options;
      (std::string(field) == "console_log" ? options.console_log : options.fault_log) = fifo;
      return config_error(options).rfind(
                 fmt::format("{}: '{}' is a FIFO with no reader", field, fifo), 0) == 0
                 ? 0
                 : 1;
    });
    EXPECT_EQ(code, 0) << field << (code < 0 ? " hung" : " gave another error");
  }
  std::remove(fifo.c_str());
}

// console_log_max_bytes goes into the config as given; 0 is no cap; the default is 64 MiB.
TEST(VmOptions, CarriesConsoleLogMax) {
  VmOptions options{};
  EXPECT_EQ(make_machine_config(options, kKernel, 8)->console_log_max, kDefaultConsoleLogMax);
  EXPECT_EQ(kDefaultConsoleLogMax, uint64_t{64} << 20);
  options.console_log_max_bytes = 1024;
  EXPECT_EQ(make_machine_config(options, kKernel, 8)->console_log_max, 1024u);
  options.console_log_max_bytes = 0;
  EXPECT_EQ(make_machine_config(options, kKernel, 8)->console_log_max, 0u);
}

// fault_around_bytes takes 0 or a power of two from 4K to 2M (default 2M); anything else is
// an error naming the field.
TEST(VmOptions, ChecksFaultAround) {
  VmOptions options{};
  EXPECT_EQ(make_machine_config(options, kKernel, 8)->faults.fault_around_max, 2u << 20);
  for (uint64_t bytes : {uint64_t{0}, uint64_t{4096}, uint64_t{65536}, uint64_t{2} << 20}) {
    options.fault_around_bytes = bytes;
    auto config = make_machine_config(options, kKernel, 8);
    ASSERT_TRUE(config.ok()) << bytes << ": " << config.error().message;
    EXPECT_EQ(config->faults.fault_around_max, bytes);
  }
  for (uint64_t bad : {uint64_t{2048}, uint64_t{12288}, uint64_t{4} << 20, uint64_t{1} << 30}) {
    options.fault_around_bytes = bad;
    EXPECT_EQ(config_error(options),
              fmt::format("fault_around_bytes: must be a power of two from 4K to 2M, or 0 for one "
                          "page per fault (got {} bytes)",
                          bad));
  }
}

// userfaultfd is on by default and carried into the fault config.
TEST(VmOptions, CarriesUserfaultfd) {
  VmOptions options{};
  EXPECT_TRUE(make_machine_config(options, kKernel, 8)->faults.userfaultfd);
  options.userfaultfd = false;
  EXPECT_FALSE(make_machine_config(options, kKernel, 8)->faults.userfaultfd);
}

// The stats file is opened while validating (truncating a regular file); a bad path is named.
TEST(VmOptions, OpensStatsFileBeforeAnyVm) {
  TempFile stats(std::vector<uint8_t>{'o', 'l', 'd'});
  VmOptions options{};
  EXPECT_FALSE(make_machine_config(options, kKernel, 8)->stats_file.has_value());
  options.stats_file = stats.path;
  auto config = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(config.ok()) << config.error().message;
  ASSERT_TRUE(config->stats_file.has_value());
  EXPECT_EQ(config->stats_file->kind, LogFileKind::kRegular);
  struct stat info {};
  ASSERT_EQ(::stat(stats.path.c_str(), &info), 0);
  EXPECT_EQ(info.st_size, 0) << "the stats file is truncated";
  options.stats_file = "/nonexistent/dir/stats.json";
  EXPECT_EQ(config_error(options).rfind("stats_file: cannot open '/nonexistent/dir/stats.json'", 0),
            0u)
      << config_error(options);
}

// A missing kernel or initrd file is named with the field.
TEST(VmOptions, RejectsMissingFiles) {
  VmOptions options{};
  options.kernel = "/nonexistent/kernel.elf";
  EXPECT_EQ(config_error(options),
            "kernel: cannot open '/nonexistent/kernel.elf': No such file or directory");
  options.kernel.clear();
  options.initrd = "/nonexistent/initrd";
  EXPECT_EQ(config_error(options).rfind("initrd: cannot open", 0), 0u);
}

// A file that is not a PVH kernel is refused before any VM exists.
TEST(VmOptions, RejectsInvalidKernelFile) {
  TempFile text(std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o'});
  VmOptions options{};
  options.kernel = text.path;
  const std::string error = config_error(options);
  EXPECT_EQ(error.rfind("kernel: '" + text.path + "': ", 0), 0u) << error;
  EXPECT_NE(error.find("not an ELF file"), std::string::npos) << error;
  const std::vector<uint8_t> garbage{'n', 'o'};
  auto bundled = make_machine_config(VmOptions{}, garbage, 8);
  ASSERT_FALSE(bundled.ok());
  EXPECT_EQ(bundled.error().message.rfind("kernel: bundled kernel: ", 0), 0u)
      << bundled.error().message;
}

// A kernel that does not fit the requested memory is refused naming the placement.
TEST(VmOptions, RejectsKernelOutsideMemory) {
  testing::PvhElfBuilder builder;
  builder.segments.push_back({64 << 20, {1}, 0x1000});
  TempFile kernel(builder.build());
  VmOptions options{};
  options.kernel = kernel.path;
  options.memory_bytes = 32 << 20;
  const std::string error = config_error(options);
  EXPECT_EQ(error.rfind("kernel: ", 0), 0u) << error;
  EXPECT_NE(error.find("outside guest RAM (raise memory_bytes"), std::string::npos) << error;
  options.memory_bytes = 128 << 20;
  EXPECT_EQ(config_error(options), "");
}

// A readable initrd is read into the config.
TEST(VmOptions, ReadsInitrd) {
  TempFile initrd(std::vector<uint8_t>{1, 2, 3});
  VmOptions options{};
  options.initrd = initrd.path;
  auto config = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(config.ok()) << config.error().message;
  ASSERT_TRUE(config->initrd.has_value());
  EXPECT_EQ(*config->initrd, (std::vector<uint8_t>{1, 2, 3}));
}

// Too long a command line is refused before anything else is read.
TEST(VmOptions, RejectsLongCommandLine) {
  VmOptions options{};
  options.cmdline = std::string(5000, 'a');
  options.kernel = "/nonexistent/kernel.elf";
  EXPECT_EQ(config_error(options).rfind("cmdline: 5000 bytes long", 0), 0u)
      << config_error(options);
  options.cmdline = std::string("a\0b", 3);
  EXPECT_EQ(config_error(options), "cmdline: contains a NUL byte");
}

// Without a policy there is no reclaim; with one the policy is parsed at validation, ""
// being the default policy.
TEST(VmOptions, ParsesReclaimPolicy) {
  VmOptions options{};
  EXPECT_FALSE(make_machine_config(options, kKernel, 8)->reclaim);
  const std::string dir = ::testing::TempDir();
  options.reclaim_policy.emplace("target=64M,period=1s,cold=3");
  options.reclaim_swap = dir + "/vm_options_swap.bin";
  auto config = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(config.ok()) << config.error().message;
  ASSERT_TRUE(config->reclaim);
  EXPECT_EQ(config->reclaim->target_bytes, uint64_t{64} << 20);
  EXPECT_EQ(config->reclaim->cold_epochs, 3u);
  ASSERT_TRUE(config->reclaim_swap);
  EXPECT_EQ(config->reclaim_swap->path(), options.reclaim_swap);
  options.reclaim_policy.emplace("");
  options.reclaim_swap.clear();
  auto defaults = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(defaults.ok()) << defaults.error().message;
  ASSERT_TRUE(defaults->reclaim);
  EXPECT_EQ(defaults->reclaim->cold_epochs, 120u);
  EXPECT_FALSE(defaults->reclaim_swap);
}

// The swap file is opened with the options: a FIFO or a device node is an error naming the
// field and the path.
TEST(VmOptions, RejectsASwapFileThatIsNotARegularFile) {
  VmOptions options{};
  options.reclaim_policy.emplace("");
  options.reclaim_swap = "/dev/null";
  const std::string error = config_error(options);
  EXPECT_EQ(error.rfind("reclaim_swap: ", 0), 0u) << error;
  EXPECT_NE(error.find("/dev/null"), std::string::npos) << error;
}

// A bad policy is an error carrying the parser's message; reclaim_swap needs a policy, and
// a policy needs userfaultfd.
TEST(VmOptions, RejectsBadReclaimOptions) {
  VmOptions options{};
  options.reclaim_policy.emplace("cold=0");
  EXPECT_EQ(config_error(options),
            "reclaim_policy: reclaim policy: cold=0: must be at least 1 epoch");
  options.reclaim_policy.emplace("codec=gzip");
  EXPECT_EQ(config_error(options),
            "reclaim_policy: reclaim policy: codec=gzip: unknown codec (expected lz4 or zstd)");
  options.reclaim_policy.emplace("cold=3");
  options.userfaultfd = false;
  EXPECT_EQ(config_error(options),
            "reclaim_policy: needs userfaultfd on (reclaimed pages come back through "
            "userfaultfd)");
  options = VmOptions{};
  options.reclaim_swap = "swap.bin";
  EXPECT_EQ(config_error(options),
            "reclaim_swap: needs reclaim_policy (the swap file is behind the reclaim pool)");
}

// dirty_tracking alone turns KVM dirty tracking on; with a policy that names no dirty= the
// policy follows it, and one that names the other kind is a contradiction.
TEST(VmOptions, DirtyTrackingAndTheReclaimPolicy) {
  VmOptions options{};
  options.dirty_tracking = vmm::DirtyTracking::kRing;
  auto alone = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(alone.ok()) << alone.error().message;
  EXPECT_EQ(alone->dirty_tracking, vmm::DirtyTracking::kRing);
  EXPECT_FALSE(alone->reclaim);

  options.reclaim_policy.emplace("cold=3");
  auto follows = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(follows.ok()) << follows.error().message;
  EXPECT_EQ(follows->reclaim->dirty, vmm::DirtyTracking::kRing);
  EXPECT_EQ(follows->dirty_tracking, vmm::DirtyTracking::kRing);

  options.reclaim_policy.emplace("cold=3,dirty=ring");
  EXPECT_EQ(config_error(options), "");
  options.reclaim_policy.emplace("dirty=log,cold=3");
  EXPECT_EQ(config_error(options),
            "dirty_tracking: contradicts the dirty=log of reclaim_policy (a VM has one kind of "
            "dirty tracking; got ring)");

  options.dirty_tracking.reset();
  auto policy_only = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(policy_only.ok());
  EXPECT_FALSE(policy_only->dirty_tracking) << "the Machine takes the policy's own";
}

// Checks come in the documented order: with several fields wrong, the first one is named.
TEST(VmOptions, ChecksInOrder) {
  VmOptions options{};
  options.memory_bytes = 0;
  options.vcpus = 0;
  options.fault_around_bytes = 3;
  options.kernel = "/nonexistent";
  EXPECT_EQ(config_error(options).rfind("memory_bytes: ", 0), 0u);
  options.memory_bytes = 64 << 20;
  EXPECT_EQ(config_error(options).rfind("vcpus: ", 0), 0u);
  options.vcpus = 1;
  EXPECT_EQ(config_error(options).rfind("fault_around_bytes: ", 0), 0u);
  options.fault_around_bytes = 0;
  EXPECT_EQ(config_error(options).rfind("kernel: ", 0), 0u);
}

}  // namespace
}  // namespace hvmm::daemon
