// What a control plane can do to a running VM's memory beyond the balloon: stage-2 TLB
// shootdowns, MMU-notifier invalidations and aging, KVM's own MMU figures, the dirty log and
// reclaim on demand. The Machine methods that return these (machine.h) are thread-safe and
// may be called while the vCPUs run; ranges are checked first and errors name the field
// ("range: [0x1000, 0x1800) is not page aligned").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/vmm/reclaim/reclaim_stats.h"

namespace hvmm::vmm {

// KVM's MMU figures from its binary stats (KVM_GET_STATS_FD): what its hardware stage-2
// tables (NPT/EPT or shadow) map now, and the faults that built them.
struct KvmMmuStats {
  bool available = false;  // false: no binary stats on this kernel (all zero)
  uint64_t pages_4k = 0;   // VM stat: 4 KiB leaves mapped
  uint64_t pages_2m = 0;
  uint64_t pages_1g = 0;
  uint64_t pf_taken = 0;  // vCPU stat, summed: page faults KVM handled
  uint64_t pf_fixed = 0;  // vCPU stat, summed: faults that installed a translation
};

// The VMM's Stage2Tlb counters as the API reports them.
struct Stage2TlbFigures {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t invalidations = 0;  // range, VMID and full invalidations
  uint64_t flushes_all = 0;    // full flushes (VMID rollovers included)
};

// A stage-2 shootdown: the VMM's TLB entries for (VMID, range) dropped and KVM made to drop
// its translations of the range, contents kept.
struct Stage2Shootdown {
  IpaRange range;
  uint64_t tlb_entries_dropped = 0;
  uint64_t pages = 0;     // guest RAM pages whose KVM translations were dropped
  std::string mechanism;  // how KVM was made to drop them, in a few words
  KvmMmuStats kvm_before;
  KvmMmuStats kvm_after;
  uint64_t latency_ns = 0;
};

// An MMU-notifier invalidation of a range requested from outside (no map change).
struct Invalidation {
  uint64_t subscribers = 0;  // subscriptions that overlapped
  uint64_t latency_ns = 0;
};

// clear_young / test_young over a range.
struct AgeResult {
  bool young = false;
  uint64_t young_pages = 0;  // pages whose stage-2 access flag was set (before a clear)
};

// The pages the guest wrote since the previous take_dirty_log(), as coalesced runs.
struct DirtyLogSnapshot {
  std::vector<IpaRange> dirty;
  uint64_t dirty_pages = 0;
  uint64_t interval_ns = 0;  // since the previous snapshot (or since tracking began)
};

// Reclaim epochs run on request.
struct ReclaimRun {
  ReclaimStats before;
  ReclaimStats after;
  uint64_t duration_ns = 0;
};

}  // namespace hvmm::vmm
