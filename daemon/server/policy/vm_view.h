// VmView: what one round of the host policy knows of one running VM, from its spec and the
// GetMemoryStats it answered this round.
//
// The idle estimate (memory the VM holds but does not use) is, in order of preference:
// - "working-set": with reclaim (its dirty tracking), resident guest RAM (the memfd's
//   allocated bytes, or resident pages when that figure is absent) minus
//   working_set.estimate_bytes, the pages written within the reclaim policy's cold threshold.
//   These idle pages are exactly reclaim's candidates (idle for at least `cold` epochs).
// - "guest-stats": the balloon's guest stats, "available-memory" (or "free-memory").
// - "none": 0. Such a VM is ordered last and gives nothing (never more than its idle bytes).
#pragma once

#include <cstdint>
#include <string>

#include "hvmm/v1/memory.pb.h"
#include "hvmm/v1/policy.pb.h"
#include "hvmm/v1/vm.pb.h"

namespace hvmm::daemon::policy {

enum class IdleSource { kWorkingSet, kGuestStats, kNone };

// "working-set", "guest-stats", "none" (VmPolicyStatus.idle_source).
const char* idle_source_name(IdleSource source);

struct VmView {
  std::string name;
  uint64_t memory_bytes = 0;
  uint64_t floor_bytes = 0;  // with the default filled in
  int32_t priority = 0;
  bool exempt = false;

  IdleSource idle_source = IdleSource::kNone;
  uint64_t idle_bytes = 0;
  uint64_t working_set_bytes = 0;
  uint64_t rss_bytes = 0;

  bool balloon_present = false;
  uint64_t balloon_target_bytes = 0;
  uint64_t balloon_actual_bytes = 0;

  bool reclaim_available = false;
  std::string reclaim_policy;    // in force, every key spelled out
  uint64_t reclaimed_bytes = 0;  // pages reclaim holds out of host memory
  uint64_t footprint_bytes = 0;  // what reclaim's target counts: allocated + pool bytes

  // Guest RAM as the floor counts it: RAM minus what the balloon holds or is asked to hold
  // (the larger: a balloon still inflating will get there) minus what reclaim took.
  uint64_t guest_ram_bytes() const;
};

// VmPolicySpec.floor_bytes, or its default (a quarter of the VM's memory).
uint64_t effective_floor(const hvmm::v1::VmPolicySpec& spec, uint64_t memory_bytes);

// The view of VM `name` from its spec and its stats.
VmView make_vm_view(const std::string& name, const hvmm::v1::VmSpec& spec,
                    const hvmm::v1::MemoryStats& stats);

}  // namespace hvmm::daemon::policy
