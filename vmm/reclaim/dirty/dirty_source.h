// DirtySource: which guest pages were written since the last look, from KVM.
//
// The reclaim engine harvests once per epoch; a page not reported for N epochs is cold. Two
// implementations: KVM's dirty bitmap per memslot (KVM_MEM_LOG_DIRTY_PAGES with
// KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: get the bitmap, then clear and re-protect only what was
// reported) and the per-vCPU dirty ring (KVM_CAP_DIRTY_LOG_RING). Both only see writes made
// through KVM's stage-2 translation (guest and KVM writes); the VMM's own writes through the
// alias mapping are reported to the engine by GuestPhysical instead.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"

namespace hvmm::vmm {

enum class DirtyTracking : uint8_t {
  kLog,   // per-memslot dirty bitmap, manual protect
  kRing,  // per-vCPU dirty rings
};

// The tracking a VM with reclaim uses unless the policy names one (measured in
// tests/bench/vmm: see the README).
inline constexpr DirtyTracking kDefaultDirtyTracking = DirtyTracking::kLog;

// Entries of each vCPU's dirty ring when the ring is used: 16 bytes each, a power of two
// (measured in tests/bench/vmm: see the README).
inline constexpr uint32_t kDefaultDirtyRingEntries = 16384;

// "log" or "ring".
inline std::string_view dirty_tracking_name(DirtyTracking tracking) {
  return tracking == DirtyTracking::kRing ? "ring" : "log";
}

// The tracking `name` names, or nothing.
inline std::optional<DirtyTracking> parse_dirty_tracking(std::string_view name) {
  if (name == "log")
    return DirtyTracking::kLog;
  if (name == "ring")
    return DirtyTracking::kRing;
  return std::nullopt;
}

// What harvesting has cost so far.
struct DirtySourceStats {
  uint64_t harvests = 0;
  uint64_t dirty_pages = 0;       // pages reported, all harvests
  uint64_t harvest_ns_total = 0;  // time inside harvest(), ioctls included
  uint64_t ring_full_exits = 0;   // vCPU exits because a ring filled (ring only)
};

class DirtySource {
 public:
  virtual ~DirtySource() = default;
  // Call `written(run)` for every run of guest pages written since the previous harvest
  // (runs in any order; a page at most once per harvest) and re-arm tracking for them. The
  // first harvest reports every page that was written since tracking began. Called from one
  // thread at a time.
  virtual Result<void> harvest(const std::function<void(IpaRange run)>& written) = 0;
  virtual DirtyTracking kind() const = 0;
  virtual DirtySourceStats stats() const = 0;
};

}  // namespace hvmm::vmm
