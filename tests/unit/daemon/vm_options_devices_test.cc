// Tests of VmOptions' device fields (balloon, balloon_target_bytes, free_page_reporting,
// balloon_stats_interval_seconds, control_channel) and of the command-line length check that
// counts the virtio-mmio announcements the Machine appends.
#include <gtest/gtest.h>

#include <string>

#include "hvmm/daemon/options/guest_cmdline.h"
#include "hvmm/daemon/options/vm_options.h"
#include "hvmm/vmm/boot/boot_data.h"
#include "hvmm/vmm/devices/virtio/mmio_layout.h"
#include "test_support.h"

namespace hvmm::daemon {
namespace {

using vmm::DeviceConfig;
namespace virtio = vmm::virtio;

const std::vector<uint8_t> kKernel = vmm::testing::PvhElfBuilder().build();

// The error message of validating `options`, or "" when valid.
std::string config_error(const VmOptions& options) {
  auto config = make_machine_config(options, kKernel, 8);
  return config ? "" : config.error().message;
}

// The length of the longest cmdline the guest line still fits with `devices`.
size_t longest_cmdline(const DeviceConfig& devices) {
  std::vector<virtio::MmioSlot> slots;
  const unsigned count = (devices.balloon ? 1u : 0u) + (devices.control_channel ? 1u : 0u);
  for (unsigned i = 0; i < count; ++i) {
    slots.push_back(*virtio::mmio_slot(i));
  }
  const size_t appended = virtio::announce_on_cmdline("x", slots).size() - 1;
  return vmm::kMaxCmdlineBytes - 1 - appended;
}

// By default the balloon is present and the control channel is not (nothing in `hvmm run`
// would answer a guest waiting on it), the target is 0 and stats come only on request.
TEST(VmDevices, DefaultsHaveBalloonWithoutControl) {
  auto config = make_machine_config(VmOptions{}, kKernel, 8);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_TRUE(config->devices.balloon);
  EXPECT_FALSE(config->devices.control_channel);
  EXPECT_EQ(config->devices.balloon_target, 0u);
  EXPECT_FALSE(config->devices.free_page_reporting);
  EXPECT_EQ(config->devices.balloon_stats_interval.count(), 0);
}

// Every device field lands in DeviceConfig.
TEST(VmDevices, OptionsFillDeviceConfig) {
  VmOptions options;
  options.memory_bytes = 256 << 20;
  options.balloon_target_bytes = 64 << 20;
  options.free_page_reporting = true;
  options.balloon_stats_interval_seconds = 5;
  options.control_channel = true;
  auto config = make_machine_config(options, kKernel, 8);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->devices.balloon_target, 64u << 20);
  EXPECT_TRUE(config->devices.free_page_reporting);
  EXPECT_EQ(config->devices.balloon_stats_interval.count(), 5);
  EXPECT_TRUE(config->devices.balloon);
  EXPECT_TRUE(config->devices.control_channel);
}

// A target of the whole RAM or more is refused naming balloon_target_bytes and the RAM size.
TEST(VmDevices, RejectsBalloonTargetNotBelowRam) {
  VmOptions options;
  options.memory_bytes = 128 << 20;
  options.balloon_target_bytes = 128 << 20;
  EXPECT_EQ(config_error(options),
            "balloon_target_bytes: must be less than the guest's RAM (memory_bytes is 134217728 "
            "bytes, got 134217728 bytes)");
  options.balloon_target_bytes = uint64_t{1} << 30;
  EXPECT_EQ(config_error(options).rfind("balloon_target_bytes: must be less", 0), 0u);
  options.balloon_target_bytes = UINT64_MAX;
  EXPECT_EQ(config_error(options).rfind("balloon_target_bytes: must be less", 0), 0u);
  options.balloon_target_bytes = 127 << 20;
  EXPECT_EQ(config_error(options), "");
}

// Intervals beyond a day are refused naming the field; a day is fine.
TEST(VmDevices, RejectsTooLongStatsInterval) {
  VmOptions options;
  options.balloon_stats_interval_seconds = 86401;
  EXPECT_EQ(config_error(options),
            "balloon_stats_interval_seconds: at most 86400 seconds, a day (got 86401)");
  options.balloon_stats_interval_seconds = UINT32_MAX;
  EXPECT_EQ(config_error(options).rfind("balloon_stats_interval_seconds: ", 0), 0u);
  options.balloon_stats_interval_seconds = 86400;
  EXPECT_EQ(config_error(options), "");
}

// Balloon fields without the balloon are a contradiction, named by the field.
TEST(VmDevices, BalloonFieldsNeedTheBalloon) {
  VmOptions options;
  options.balloon = false;
  EXPECT_EQ(config_error(options), "");
  options.free_page_reporting = true;
  EXPECT_EQ(config_error(options),
            "free_page_reporting: needs the balloon device, which this VM is configured without");
  options.free_page_reporting = false;
  options.balloon_stats_interval_seconds = 3;
  EXPECT_EQ(config_error(options).rfind("balloon_stats_interval_seconds: needs the balloon", 0),
            0u);
  options.balloon_target_bytes = 1 << 20;
  EXPECT_EQ(config_error(options).rfind("balloon_target_bytes: needs the balloon", 0), 0u);
}

// The length check counts the announcements: the longest line that fits with both devices
// passes, one byte more is refused at validation (it used to fail only at VM setup, when
// the boot data were written with the announcements appended).
TEST(VmDevices, CmdlineCheckCountsTheAnnouncements) {
  VmOptions options;
  options.control_channel = true;
  DeviceConfig both;
  both.control_channel = true;
  const size_t longest = longest_cmdline(both);
  options.cmdline = std::string(longest, 'a');
  EXPECT_EQ(config_error(options), "");
  options.cmdline = std::string(longest + 1, 'a');
  const std::string error = config_error(options);
  EXPECT_EQ(error.rfind(fmt::format("cmdline: {} bytes long; hvmm appends", longest + 1), 0), 0u)
      << error;
  EXPECT_NE(error.find(fmt::format("at most {} bytes fit", longest)), std::string::npos) << error;
  // Without devices nothing is appended and the raw limit applies.
  options.balloon = false;
  options.control_channel = false;
  EXPECT_EQ(config_error(options), "");
  options.cmdline = std::string(vmm::kMaxCmdlineBytes, 'a');
  EXPECT_EQ(config_error(options).rfind("cmdline: 4096 bytes long", 0), 0u);
}

// The line the check measures is the one the Machine builds, and it is what the boot data
// accept: the longest passing line plus its announcements is exactly kMaxCmdlineBytes - 1.
TEST(VmDevices, LongestPassingLineFitsTheBootData) {
  DeviceConfig devices;
  devices.control_channel = true;
  const std::string cmdline(longest_cmdline(devices), 'a');
  ASSERT_TRUE(check_guest_cmdline(cmdline, devices).ok());
  const std::string guest =
      virtio::announce_on_cmdline(cmdline, {*virtio::mmio_slot(0), *virtio::mmio_slot(1)});
  EXPECT_EQ(guest.size(), vmm::kMaxCmdlineBytes - 1);
  EXPECT_TRUE(vmm::check_cmdline(guest).ok());
  EXPECT_FALSE(vmm::check_cmdline(guest + "b").ok());
}

}  // namespace
}  // namespace hvmm::daemon
