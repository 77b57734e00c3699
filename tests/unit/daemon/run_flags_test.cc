// Tests of `hvmm run`'s flags: CLI11 parsing into RunFlags, their conversion into VmOptions,
// and what a person reads when a value is wrong: VmOptions' field errors put back in flag
// terms, exactly as `hvmm run` printed them before the options moved into daemon/.
#include "hvmm/daemon/cli/run_flags.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "hvmm/daemon/args/size.h"
#include "hvmm/daemon/cli/cli.h"
#include "test_support.h"

namespace hvmm::cli {
namespace {

const std::vector<uint8_t> kKernel = vmm::testing::PvhElfBuilder().build();

// What `hvmm run ARGS` prints after "hvmm run: " when validation fails, "" when it passes
// (KVM's limit taken as `max_vcpus`).
std::string run_error(const std::vector<std::string>& args, unsigned max_vcpus = 8) {
  auto flags = parse_run_arguments(args);
  if (!flags) {
    return flags.error().message;
  }
  auto options = to_vm_options(*flags);
  if (!options) {
    return translate_field_error(options.error().message, typed_values(*flags));
  }
  auto config = daemon::make_machine_config(*options, kKernel, max_vcpus);
  return config ? "" : translate_field_error(config.error().message, typed_values(*flags));
}

// A path under the temp directory, removed with the object.
struct TempPath {
  explicit TempPath(const char* tag)
      : path(fmt::format("{}/hvmm-run-flags-{}-{}", ::testing::TempDir(), ::getpid(), tag)) {
    std::remove(path.c_str());
  }
  ~TempPath() { std::remove(path.c_str()); }
  std::string path;
};

// The CLI maps every flag onto RunFlags, as typed.
TEST(RunCli, ParsesEveryOption) {
  auto flags = parse_run_arguments(
      {"--kernel",       "k.elf",    "--initrd",          "i.img",  "--cmdline",      "a b",
       "--memory",       "64M",      "--vcpus",           "3",      "--fault-log",    "f.log",
       "--console-log",  "c.log",    "--console-log-max", "1M",     "--fault-around", "64K",
       "--userfaultfd",  "off",      "--stats",           "s.json", "--reclaim",      "cold=3",
       "--reclaim-swap", "swap.bin", "--dirty-tracking",  "ring"});
  ASSERT_TRUE(flags.ok()) << flags.error().message;
  EXPECT_EQ(flags->kernel, "k.elf");
  EXPECT_EQ(flags->initrd, "i.img");
  EXPECT_EQ(flags->cmdline, "a b");
  EXPECT_EQ(flags->memory, "64M");
  EXPECT_EQ(flags->vcpus, 3u);
  EXPECT_EQ(flags->fault_log, "f.log");
  EXPECT_EQ(flags->console_log, "c.log");
  EXPECT_EQ(flags->console_log_max, "1M");
  EXPECT_EQ(flags->fault_around, "64K");
  EXPECT_EQ(flags->userfaultfd, "off");
  EXPECT_EQ(flags->stats, "s.json");
  EXPECT_EQ(flags->reclaim, "cold=3");
  EXPECT_EQ(flags->reclaim_swap, "swap.bin");
  EXPECT_EQ(flags->dirty_tracking, "ring");
}

// Every flag reaches its VmOptions field, sizes in bytes.
TEST(RunCli, ConvertsEveryOptionToVmOptions) {
  auto flags = parse_run_arguments({"--kernel",
                                    "k.elf",
                                    "--initrd",
                                    "i.img",
                                    "--cmdline",
                                    "a b",
                                    "--memory",
                                    "64M",
                                    "--vcpus",
                                    "3",
                                    "--fault-log",
                                    "f.log",
                                    "--console-log",
                                    "c.log",
                                    "--console-log-max",
                                    "1M",
                                    "--fault-around",
                                    "64K",
                                    "--userfaultfd",
                                    "off",
                                    "--stats",
                                    "s.json",
                                    "--reclaim",
                                    "cold=3",
                                    "--reclaim-swap",
                                    "swap.bin",
                                    "--dirty-tracking",
                                    "ring",
                                    "--balloon",
                                    "8M",
                                    "--free-page-reporting",
                                    "--balloon-stats-interval",
                                    "7",
                                    "--control"});
  ASSERT_TRUE(flags.ok()) << flags.error().message;
  auto options = to_vm_options(*flags);
  ASSERT_TRUE(options.ok()) << options.error().message;
  EXPECT_EQ(options->name, "run");
  EXPECT_EQ(options->kernel, "k.elf");
  EXPECT_EQ(options->initrd, "i.img");
  EXPECT_EQ(options->cmdline, "a b");
  EXPECT_EQ(options->memory_bytes, 64u << 20);
  EXPECT_EQ(options->vcpus, 3u);
  EXPECT_EQ(options->fault_log, "f.log");
  EXPECT_EQ(options->console_log, "c.log");
  EXPECT_EQ(options->console_log_max_bytes, 1u << 20);
  EXPECT_EQ(options->fault_around_bytes, 64u << 10);
  EXPECT_FALSE(options->userfaultfd);
  EXPECT_EQ(options->stats_file, "s.json");
  EXPECT_EQ(options->reclaim_policy, "cold=3");
  EXPECT_EQ(options->reclaim_swap, "swap.bin");
  EXPECT_EQ(options->dirty_tracking, vmm::DirtyTracking::kRing);
  EXPECT_TRUE(options->balloon);
  EXPECT_EQ(options->balloon_target_bytes, 8u << 20);
  EXPECT_TRUE(options->free_page_reporting);
  EXPECT_EQ(options->balloon_stats_interval_seconds, 7u);
  EXPECT_TRUE(options->control_channel);
}

// The flags' defaults are VmOptions' defaults.
TEST(RunCli, DefaultsAreVmOptionsDefaults) {
  auto options = to_vm_options(RunFlags{});
  ASSERT_TRUE(options.ok()) << options.error().message;
  const daemon::VmOptions defaults;
  EXPECT_EQ(options->memory_bytes, defaults.memory_bytes);
  EXPECT_EQ(options->vcpus, defaults.vcpus);
  EXPECT_EQ(options->console_log_max_bytes, defaults.console_log_max_bytes);
  EXPECT_EQ(options->fault_around_bytes, defaults.fault_around_bytes);
  EXPECT_EQ(options->userfaultfd, defaults.userfaultfd);
  EXPECT_EQ(options->balloon, defaults.balloon);
  EXPECT_EQ(options->balloon_target_bytes, defaults.balloon_target_bytes);
  EXPECT_EQ(options->balloon_stats_interval_seconds, defaults.balloon_stats_interval_seconds);
  EXPECT_EQ(options->control_channel, defaults.control_channel);
  EXPECT_FALSE(options->reclaim_policy);
  EXPECT_FALSE(options->dirty_tracking);
}

// --reclaim is absent unless given, and may be given the empty (default) policy.
TEST(RunCli, ReclaimIsOptionalAndMayBeEmpty) {
  EXPECT_FALSE(parse_run_arguments({})->reclaim);
  auto flags = parse_run_arguments({"--reclaim", ""});
  ASSERT_TRUE(flags.ok()) << flags.error().message;
  EXPECT_EQ(flags->reclaim, "");
  EXPECT_EQ(to_vm_options(*flags)->reclaim_policy, "");
}

// --console-log-max without --console-log is an error (stdout is never capped).
TEST(RunCli, ConsoleLogMaxNeedsConsoleLog) {
  auto flags = parse_run_arguments({"--console-log-max", "1M"});
  ASSERT_FALSE(flags.ok());
  EXPECT_NE(flags.error().message.find("--console-log-max requires --console-log"),
            std::string::npos)
      << flags.error().message;
  EXPECT_EQ(parse_run_arguments({})->console_log_max, "64M");
}

// Unknown options and non-numeric vCPU counts are CLI errors.
TEST(RunCli, RejectsUnknownOptionAndBadNumber) {
  EXPECT_FALSE(parse_run_arguments({"--frobnicate"}).ok());
  EXPECT_FALSE(parse_run_arguments({"--vcpus", "many"}).ok());
}

// The CLI maps the device flags onto RunFlags.
TEST(RunDevicesCli, ParsesDeviceOptions) {
  auto flags = parse_run_arguments(
      {"--balloon", "64M", "--free-page-reporting", "--balloon-stats-interval", "2", "--control"});
  ASSERT_TRUE(flags.ok()) << flags.error().message;
  EXPECT_EQ(flags->balloon, "64M");
  EXPECT_TRUE(flags->free_page_reporting);
  EXPECT_EQ(flags->balloon_stats_interval, "2");
  EXPECT_TRUE(flags->control);
  EXPECT_FALSE(flags->no_balloon);
  auto none = parse_run_arguments({"--no-balloon"});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->no_balloon);
  EXPECT_EQ(none->balloon_stats_interval, "0");
  EXPECT_FALSE(to_vm_options(*none)->balloon);
}

// Values the CLI itself cannot read are named by their flag and quoted.
TEST(RunFlagErrors, UnreadableValuesNameTheFlag) {
  EXPECT_EQ(run_error({"--memory", "lots"}),
            "--memory: 'lots' is not a size (expected a number with an optional K, M or G "
            "suffix)");
  EXPECT_EQ(run_error({"--memory", "12X"}), "--memory: '12X' has an unknown size suffix 'X'");
  EXPECT_EQ(run_error({"--balloon", "lots"}).rfind("--balloon: 'lots' is not a size", 0), 0u);
  EXPECT_EQ(run_error({"--console-log", "/dev/null", "--console-log-max", "lots"}),
            "--console-log-max: 'lots' is not a size (expected a number with an optional K, M or "
            "G suffix)");
  EXPECT_EQ(run_error({"--fault-around", "wide"}).rfind("--fault-around: 'wide' is not a size", 0),
            0u);
  EXPECT_EQ(run_error({"--userfaultfd", "yes"}), "--userfaultfd yes: must be on or off");
  EXPECT_EQ(run_error({"--dirty-tracking", "sometimes"}),
            "--dirty-tracking sometimes: must be log or ring");
  for (const char* interval : {"-1", "1.5", "soon", "", "99999999999"}) {
    EXPECT_EQ(run_error({"--balloon-stats-interval", interval}),
              fmt::format("--balloon-stats-interval '{}': expected whole seconds (0: only on "
                          "request)",
                          interval));
  }
}

// VmOptions' errors read as `hvmm run` has always printed them: the flag and what the user
// typed, then the reason.
TEST(RunFlagErrors, ValueErrorsQuoteWhatWasTyped) {
  for (const char* memory : {"0", "1M", "1T", "300G", "12345"}) {
    EXPECT_EQ(
        run_error({"--memory", memory}).rfind(fmt::format("--memory {}: must be ", memory), 0), 0u)
        << memory << ": " << run_error({"--memory", memory});
  }
  EXPECT_EQ(run_error({"--memory", "1T"}),
            "--memory 1T: must be between 2M and 256G (got 1099511627776 bytes)");
  EXPECT_EQ(run_error({"--vcpus", "0"}).rfind("--vcpus 0: must be between 1 and 8", 0), 0u);
  EXPECT_EQ(run_error({"--vcpus", "9"}),
            "--vcpus 9: must be between 1 and 8 (KVM's limit here is 8; got 9)");
  EXPECT_EQ(run_error({"--vcpus", "8"}), "");
  EXPECT_EQ(run_error({"--balloon", "128M"}),
            "--balloon 128M: must be less than the guest's RAM (--memory is 134217728 bytes, got "
            "134217728 bytes)");
  EXPECT_EQ(run_error({"--balloon", "1G"}).rfind("--balloon 1G: must be less", 0), 0u);
  EXPECT_EQ(run_error({"--balloon", "127M"}), "");
  EXPECT_EQ(run_error({"--balloon-stats-interval", "86401"}),
            "--balloon-stats-interval 86401: at most 86400 seconds, a day (got 86401)");
  for (const char* bad : {"2K", "12K", "4M", "1G"}) {
    auto bytes = args::parse_size(bad);
    EXPECT_EQ(run_error({"--fault-around", bad}),
              fmt::format("--fault-around {}: must be a power of two from 4K to 2M, or 0 for one "
                          "page per fault (got {} bytes)",
                          bad, *bytes));
  }
}

// Contradictions name both flags.
TEST(RunFlagErrors, ContradictionsNameTheFlags) {
  EXPECT_EQ(run_error({"--no-balloon"}), "");
  EXPECT_EQ(run_error({"--no-balloon", "--free-page-reporting"}),
            "--free-page-reporting: needs the balloon device, which this VM is configured "
            "without");
  EXPECT_EQ(run_error({"--no-balloon", "--balloon-stats-interval", "3"})
                .rfind("--balloon-stats-interval 3: needs the balloon", 0),
            0u);
  EXPECT_EQ(
      run_error({"--no-balloon", "--balloon", "1M"}).rfind("--balloon 1M: needs the balloon", 0),
      0u);
  EXPECT_EQ(run_error({"--reclaim", "cold=0"}),
            "--reclaim: reclaim policy: cold=0: must be at least 1 epoch");
  EXPECT_EQ(run_error({"--reclaim", "codec=gzip"}),
            "--reclaim: reclaim policy: codec=gzip: unknown codec (expected lz4 or zstd)");
  EXPECT_EQ(run_error({"--reclaim", "cold=3", "--userfaultfd", "off"}),
            "--reclaim: needs userfaultfd on (reclaimed pages come back through userfaultfd)");
  EXPECT_EQ(run_error({"--reclaim-swap", "swap.bin"}),
            "--reclaim-swap swap.bin: needs --reclaim (the swap file is behind the reclaim pool)");
  EXPECT_EQ(run_error({"--reclaim", "dirty=log", "--dirty-tracking", "ring"}),
            "--dirty-tracking ring: contradicts the dirty=log of --reclaim (a VM has one kind of "
            "dirty tracking; got ring)");
  EXPECT_EQ(run_error({"--reclaim", "cold=2", "--dirty-tracking", "ring"}), "");
}

// File errors name the flag and keep the path quoted where `hvmm run` always had it.
TEST(RunFlagErrors, FileErrorsNameTheFlagAndPath) {
  EXPECT_EQ(run_error({"--kernel", "/nonexistent/kernel.elf"}),
            "--kernel: cannot open '/nonexistent/kernel.elf': No such file or directory");
  EXPECT_EQ(run_error({"--initrd", "/dev/zero"}),
            "--initrd '/dev/zero' is a character device, not a regular file");
  EXPECT_EQ(run_error({"--kernel", "/tmp"}), "--kernel '/tmp' is a directory, not a regular file");
  EXPECT_EQ(run_error({"--fault-log", "/nonexistent/dir/faults.log"}),
            "--fault-log: cannot open '/nonexistent/dir/faults.log': No such file or directory");
  EXPECT_EQ(run_error({"--console-log", "/dev/zero"}),
            "--console-log '/dev/zero' is a character device (1:5) that is neither a terminal nor "
            "/dev/null");
  EXPECT_EQ(run_error({"--stats", "/nonexistent/dir/stats.json"})
                .rfind("--stats: cannot open '/nonexistent/dir/stats.json'", 0),
            0u);
  const std::string reclaim_swap = run_error({"--reclaim", "", "--reclaim-swap", "/dev/null"});
  EXPECT_EQ(reclaim_swap.rfind("--reclaim-swap /dev/null: ", 0), 0u) << reclaim_swap;
  // A path that contains a field's name is left as it is.
  EXPECT_EQ(run_error({"--kernel", "/nonexistent/memory_bytes"}),
            "--kernel: cannot open '/nonexistent/memory_bytes': No such file or directory");
}

// A file larger than RAM, and a kernel that does not fit it, tell the user to raise --memory.
TEST(RunFlagErrors, SizeErrorsPointAtMemory) {
  TempPath sparse("sparse");
  {
    std::FILE* file = std::fopen(sparse.path.c_str(), "w");
    ASSERT_NE(file, nullptr);
    std::fclose(file);
  }
  ASSERT_EQ(::truncate(sparse.path.c_str(), int64_t{1} << 40), 0);
  EXPECT_EQ(run_error({"--initrd", sparse.path}),
            "--initrd '" + sparse.path +
                "' is 1099511627776 bytes (1T), larger than the guest's RAM of 134217728 bytes "
                "(128M) (raise --memory or use a smaller file)");
  vmm::testing::PvhElfBuilder builder;
  builder.segments.push_back({64 << 20, {1}, 0x1000});
  TempPath kernel("kernel");
  {
    const std::vector<uint8_t> image = builder.build();
    std::FILE* file = std::fopen(kernel.path.c_str(), "w");
    ASSERT_NE(file, nullptr);
    std::fwrite(image.data(), 1, image.size(), file);
    std::fclose(file);
  }
  const std::string error = run_error({"--kernel", kernel.path, "--memory", "32M"});
  EXPECT_EQ(error.rfind("--kernel '" + kernel.path + "': invalid kernel: ", 0), 0u) << error;
  EXPECT_NE(error.find("(raise --memory or relink the kernel)"), std::string::npos) << error;
}

// The command line's length is named with the flag.
TEST(RunFlagErrors, LongCommandLine) {
  EXPECT_EQ(run_error({"--cmdline", std::string(5000, 'a')}).rfind("--cmdline: 5000 bytes long", 0),
            0u);
}

}  // namespace
}  // namespace hvmm::cli
