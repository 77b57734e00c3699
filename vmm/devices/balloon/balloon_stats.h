// What the balloon knows: the target, the driver's `actual`, what it was given, and the last
// memory statistics the guest reported on the stats queue.
//
// Stat tags are those of Linux 6.12 (include/uapi/linux/virtio_balloon.h): 0-9 from the
// virtio spec, 10-15 added by Linux 6.12. Values are bytes except the counters (faults, OOM
// kills, stalls, hugetlb allocations/failures).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>

namespace hvmm::vmm {

enum class BalloonStat : uint16_t {
  kSwapIn = 0,
  kSwapOut = 1,
  kMajorFaults = 2,
  kMinorFaults = 3,
  kFreeMemory = 4,
  kTotalMemory = 5,
  kAvailableMemory = 6,
  kDiskCaches = 7,
  kHugetlbAllocations = 8,
  kHugetlbFailures = 9,
  kOomKills = 10,
  kAllocStalls = 11,
  kAsyncScans = 12,
  kDirectScans = 13,
  kAsyncReclaims = 14,
  kDirectReclaims = 15,
};
inline constexpr unsigned kBalloonStatCount = 16;

// The tag's name as Linux spells it ("free-memory"), or nullptr for an unknown tag.
const char* balloon_stat_name(uint16_t tag);

// BalloonStatistics is a snapshot of the balloon device.
struct BalloonStatistics {
  uint64_t target_pages = 0;      // what the host asks the balloon to hold (config num_pages)
  uint64_t actual_pages = 0;      // what the driver says it holds (config actual)
  uint64_t inflated_pages = 0;    // pages given on the inflate queue (after checks)
  uint64_t deflated_pages = 0;    // pages taken back on the deflate queue
  uint64_t reported_pages = 0;    // pages reported free on the reporting queue
  uint64_t refused_pfns = 0;      // pages refused: outside RAM, in the MMIO hole, misaligned
  uint64_t backend_failures = 0;  // runs the host could not release (see the log)
  uint64_t unknown_stat_tags = 0;
  uint64_t stats_updates = 0;  // stats buffers received
  uint64_t features = 0;       // negotiated
  std::array<std::optional<uint64_t>, kBalloonStatCount> guest_stats{};
  std::optional<std::chrono::system_clock::time_point> guest_stats_time;
};

}  // namespace hvmm::vmm
