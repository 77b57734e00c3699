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

// The tracking a VM with reclaim uses unless the policy names one: the bitmap. Measured in
// tests/bench/vmm/dirty_tracking_bench.cc (figures in vmm/reclaim/dirty/README.md; so far
// only under nested KVM, where every time is emulated): the ring harvested faster only with
// half of RAM dirty per epoch (0.56-0.68x the bitmap's time at 50% of a 256 MiB guest) and
// as fast or slower with 1-10% dirty (0.8-1.7x), and the guest's own time was no better with
// it (0.97-2.4x the bitmap's). Reclaim lives where most pages are cold, so epochs dirty a
// small share of RAM. By structure, the bitmap's harvest costs the engine's thread one bit per
// page of RAM per epoch (8 KiB for 256 MiB, 2 MiB for 64 GiB: small at a period of seconds)
// and nothing on the vCPUs beyond the first write per page per epoch, which both kinds pay;
// the ring adds a push per dirtied page, an exit each time a ring fills, and kernel memory
// per vCPU.
inline constexpr DirtyTracking kDefaultDirtyTracking = DirtyTracking::kLog;

// Entries of each vCPU's dirty ring when the ring is used (16 bytes each, a power of two):
// 256 KiB per vCPU, room for 64 MiB of distinct pages written per vCPU per epoch before a
// ring-full exit. KVM keeps a reserve (64 entries, plus 512 with Intel PML), so 4096 is the
// smallest size that leaves most of the ring usable, and 65536 (1 MiB) its largest. One exit
// per ~16k dirtied pages (2 per epoch at 50% of 256 MiB, measured) adds an exit and a harvest
// of 256 KiB of entries to 16k write faults the guest paid anyway: well under 1% more.
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
