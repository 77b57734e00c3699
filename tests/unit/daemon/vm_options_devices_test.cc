// Tests of the `hvmm run` device options (--balloon, --free-page-reporting,
// --balloon-stats-interval, --no-balloon, --control) and of the command-line length check
// that counts the virtio-mmio announcements the Machine appends.
#include <gtest/gtest.h>

#include <string>

#include "hvmm/cli/cli.h"
#include "hvmm/vmm/boot/boot_data.h"
#include "hvmm/vmm/devices/virtio/mmio_layout.h"
#include "hvmm/vmm/machine/run_options.h"
#include "test_support.h"

namespace hvmm::vmm {
namespace {

const std::vector<uint8_t> kKernel = testing::PvhElfBuilder().build();

// The error message of validating `options`, or "" when valid.
std::string config_error(const RunOptions& options) {
  auto config = make_machine_config(options, kKernel, 8);
  return config ? "" : config.error().message;
}

// The length of the longest --cmdline the guest line still fits with `devices`.
size_t longest_cmdline(const DeviceConfig& devices) {
  std::vector<virtio::MmioSlot> slots;
  const unsigned count = (devices.balloon ? 1u : 0u) + (devices.control_channel ? 1u : 0u);
  for (unsigned i = 0; i < count; ++i) {
    slots.push_back(*virtio::mmio_slot(i));
  }
  const size_t appended = virtio::announce_on_cmdline("x", slots).size() - 1;
  return kMaxCmdlineBytes - 1 - appended;
}

// By default the balloon is present and the control channel is not (nothing in `hvmm run`
// would answer a guest waiting on it), the target is 0 and stats come only on request.
TEST(RunDevices, DefaultsHaveBalloonWithoutControl) {
  auto config = make_machine_config(RunOptions{}, kKernel, 8);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_TRUE(config->devices.balloon);
  EXPECT_FALSE(config->devices.control_channel);
  EXPECT_EQ(config->devices.balloon_target, 0u);
  EXPECT_FALSE(config->devices.free_page_reporting);
  EXPECT_EQ(config->devices.balloon_stats_interval.count(), 0);
}

// Every device option lands in DeviceConfig.
TEST(RunDevices, OptionsFillDeviceConfig) {
  RunOptions options;
  options.memory = "256M";
  options.balloon = "64M";
  options.free_page_reporting = true;
  options.balloon_stats_interval = "5";
  options.control = true;
  auto config = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->devices.balloon_target, 64u << 20);
  EXPECT_TRUE(config->devices.free_page_reporting);
  EXPECT_EQ(config->devices.balloon_stats_interval.count(), 5);
  EXPECT_TRUE(config->devices.balloon);
  EXPECT_TRUE(config->devices.control_channel);
}

// A target of the whole RAM or more, or not a size, is refused naming --balloon.
TEST(RunDevices, RejectsBalloonTargetNotBelowRam) {
  RunOptions options;
  options.memory = "128M";
  options.balloon = "128M";
  EXPECT_NE(config_error(options).find("--balloon 128M: must be less than the guest's RAM"),
            std::string::npos)
      << config_error(options);
  options.balloon = "1G";
  EXPECT_NE(config_error(options).find("--balloon 1G: must be less"), std::string::npos);
  options.balloon = "lots";
  EXPECT_NE(config_error(options).find("--balloon: 'lots' is not a size"), std::string::npos)
      << config_error(options);
  options.balloon = "127M";
  EXPECT_EQ(config_error(options), "");
}

// Negative, fractional, non-numeric and too long intervals are refused naming the option.
TEST(RunDevices, RejectsBadStatsInterval) {
  for (const char* interval : {"-1", "1.5", "soon", "", "86401"}) {
    RunOptions options;
    options.balloon_stats_interval = interval;
    EXPECT_NE(config_error(options).find("--balloon-stats-interval"), std::string::npos)
        << interval;
  }
}

// Balloon options with --no-balloon are a contradiction, named by the option.
TEST(RunDevices, BalloonOptionsNeedTheBalloon) {
  RunOptions options;
  options.no_balloon = true;
  EXPECT_EQ(config_error(options), "");
  options.free_page_reporting = true;
  EXPECT_NE(config_error(options).find("--free-page-reporting: needs the balloon"),
            std::string::npos)
      << config_error(options);
  options.free_page_reporting = false;
  options.balloon_stats_interval = "3";
  EXPECT_NE(config_error(options).find("--balloon-stats-interval: needs the balloon"),
            std::string::npos);
  options.balloon = "1M";
  EXPECT_NE(config_error(options).find("--balloon: needs the balloon"), std::string::npos);
}

// The length check counts the announcements: the longest line that fits with both devices
// passes, one byte more is refused at validation (it used to fail only at VM setup, when
// the boot data were written with the announcements appended).
TEST(RunDevices, CmdlineCheckCountsTheAnnouncements) {
  RunOptions options;
  options.control = true;
  DeviceConfig both;
  both.control_channel = true;
  const size_t longest = longest_cmdline(both);
  options.cmdline = std::string(longest, 'a');
  EXPECT_EQ(config_error(options), "");
  options.cmdline = std::string(longest + 1, 'a');
  const std::string error = config_error(options);
  EXPECT_NE(error.find(fmt::format("--cmdline is {} bytes long; hvmm appends", longest + 1)),
            std::string::npos)
      << error;
  EXPECT_NE(error.find(fmt::format("at most {} bytes fit", longest)), std::string::npos) << error;
  // Without devices nothing is appended and the raw limit applies.
  options.no_balloon = true;
  options.control = false;
  EXPECT_EQ(config_error(options), "");
  options.cmdline = std::string(kMaxCmdlineBytes, 'a');
  EXPECT_NE(config_error(options).find("--cmdline is 4096 bytes long"), std::string::npos);
}

// The line the check measures is the one the Machine builds, and it is what the boot data
// accept: the longest passing line plus its announcements is exactly kMaxCmdlineBytes - 1.
TEST(RunDevices, LongestPassingLineFitsTheBootData) {
  DeviceConfig devices;
  devices.control_channel = true;
  const std::string cmdline(longest_cmdline(devices), 'a');
  ASSERT_TRUE(check_guest_cmdline(cmdline, devices).ok());
  const std::string guest =
      virtio::announce_on_cmdline(cmdline, {*virtio::mmio_slot(0), *virtio::mmio_slot(1)});
  EXPECT_EQ(guest.size(), kMaxCmdlineBytes - 1);
  EXPECT_TRUE(check_cmdline(guest).ok());
  EXPECT_FALSE(check_cmdline(guest + "b").ok());
}

// The CLI maps the device flags onto RunOptions.
TEST(RunDevicesCli, ParsesDeviceOptions) {
  auto options = cli::parse_run_arguments(
      {"--balloon", "64M", "--free-page-reporting", "--balloon-stats-interval", "2", "--control"});
  ASSERT_TRUE(options.ok()) << options.error().message;
  EXPECT_EQ(options->balloon, "64M");
  EXPECT_TRUE(options->free_page_reporting);
  EXPECT_EQ(options->balloon_stats_interval, "2");
  EXPECT_TRUE(options->control);
  EXPECT_FALSE(options->no_balloon);
  auto none = cli::parse_run_arguments({"--no-balloon"});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->no_balloon);
  EXPECT_EQ(none->balloon_stats_interval, "0");
}

}  // namespace
}  // namespace hvmm::vmm
