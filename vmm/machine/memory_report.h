// MemoryReport: the VM's memory figures at exit, as the one JSON object `hvmm run --stats
// FILE` writes (every field is documented in vmm/README.md, "The --stats file").
//
// The Machine gathers the figures when the vCPUs have stopped and the memory is still mapped:
// the host's view of the process (/proc: VmHWM, VmRSS, RssShmem), the stage-2 map's page
// counts by state, the memfd's allocated bytes, the balloon's snapshot and the fault counts.
// The formatter is pure, so its exact text is unit tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "hvmm/vmm/devices/balloon/balloon_stats.h"
#include "hvmm/vmm/fault/fault_counts.h"
#include "hvmm/vmm/host/process_memory.h"
#include "hvmm/vmm/memory/page_counts.h"
#include "hvmm/vmm/reclaim/reclaim_policy.h"
#include "hvmm/vmm/reclaim/reclaim_stats.h"
#include "hvmm/vmm/reclaim/reclaim_store.h"

namespace hvmm::vmm {

// The reclaim engine's figures and the policy it ran with.
struct ReclaimReport {
  ReclaimPolicy policy;
  ReclaimStats stats;
};

struct MemoryReport {
  std::string vm;
  int exit_status = 0;
  bool ended_by_vmm = false;  // false: the guest's own exit (port 0xf4)
  uint64_t memory_bytes = 0;  // guest RAM
  bool userfaultfd = false;
  uint64_t fault_around_max = 0;
  std::optional<ProcessMemory> host;  // none: /proc could not be read
  std::string host_error;             // why not
  std::optional<PageCounts> pages;    // none: the map could not be read (a stuck fault handler)
  std::optional<uint64_t> memfd_allocated_bytes;  // none: SEEK_DATA/SEEK_HOLE failed
  std::optional<BalloonStatistics> balloon;       // none: the VM has no balloon
  FaultCounts faults;
  // Reclaim (vmm/reclaim): all three are set only for a VM with --reclaim, and their
  // sections ("reclaim", "pool", "working_set") appear only when set.
  std::optional<ReclaimReport> reclaim;
  std::optional<ReclaimStoreStats> pool;
  std::optional<WorkingSetEstimate> working_set;
};

// The report as one JSON object on one line, with a trailing newline.
std::string format_memory_report(const MemoryReport& report);

// The fault counts by kind, for the end-of-run summary: "missing 512, unbacked 3" (kinds in
// FaultKind order, only those counted), or "" when no fault was counted.
std::string fault_counts_by_kind(const FaultCounts& counts);

}  // namespace hvmm::vmm
