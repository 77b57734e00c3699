// The names of VmOptions' fields as its errors spell them (the first word of every message
// make_machine_config() returns). They are the member names of VmOptions and, where the API
// has the same field, of hvmm.v1.VmSpec. Front ends that spell fields differently map these
// names, not free text: the CLI's table (daemon/cli/flag_names.h) has one row per entry of
// kVmOptionFields, which a unit test checks.
#pragma once

#include <array>
#include <string_view>

namespace hvmm::daemon::field {

inline constexpr std::string_view kName = "name";
inline constexpr std::string_view kKernel = "kernel";
inline constexpr std::string_view kInitrd = "initrd";
inline constexpr std::string_view kCmdline = "cmdline";
inline constexpr std::string_view kMemory = "memory_bytes";
inline constexpr std::string_view kVcpus = "vcpus";
inline constexpr std::string_view kFaultLog = "fault_log";
inline constexpr std::string_view kConsoleLog = "console_log";
inline constexpr std::string_view kConsoleLogMax = "console_log_max_bytes";
inline constexpr std::string_view kBalloon = "balloon";
inline constexpr std::string_view kBalloonTarget = "balloon_target_bytes";
inline constexpr std::string_view kFreePageReporting = "free_page_reporting";
inline constexpr std::string_view kBalloonStatsInterval = "balloon_stats_interval_seconds";
inline constexpr std::string_view kControlChannel = "control_channel";
inline constexpr std::string_view kFaultAround = "fault_around_bytes";
inline constexpr std::string_view kUserfaultfd = "userfaultfd";
inline constexpr std::string_view kStatsFile = "stats_file";
inline constexpr std::string_view kReclaimPolicy = "reclaim_policy";
inline constexpr std::string_view kReclaimSwap = "reclaim_swap";
inline constexpr std::string_view kDirtyTracking = "dirty_tracking";

// Every field, in VmOptions' order.
inline constexpr std::array<std::string_view, 20> kVmOptionFields = {
    kName,
    kKernel,
    kInitrd,
    kCmdline,
    kMemory,
    kVcpus,
    kFaultLog,
    kConsoleLog,
    kConsoleLogMax,
    kBalloon,
    kBalloonTarget,
    kFreePageReporting,
    kBalloonStatsInterval,
    kControlChannel,
    kFaultAround,
    kUserfaultfd,
    kStatsFile,
    kReclaimPolicy,
    kReclaimSwap,
    kDirtyTracking,
};

}  // namespace hvmm::daemon::field
