// The VM process's translations between the VMM's own types and hvmm.v1 messages: enums
// number for number where the two sides promise it (tests/unit/proto pins those), figures
// field by field. Pure functions: no Machine, no KVM.
#pragma once

#include <optional>

#include "hvmm/base/result.h"
#include "hvmm/stage2/change.h"
#include "hvmm/stage2/stage2_map.h"
#include "hvmm/v1/memory.pb.h"
#include "hvmm/v1/notifier.pb.h"
#include "hvmm/v1/stage2.pb.h"
#include "hvmm/vmm/devices/balloon/balloon_stats.h"
#include "hvmm/vmm/fault/fault_counts.h"
#include "hvmm/vmm/fault/fault_log.h"
#include "hvmm/vmm/host/process_memory.h"
#include "hvmm/vmm/machine/machine_reclaim.h"
#include "hvmm/vmm/machine/memory_controls.h"
#include "hvmm/vmm/memory/page_counts.h"

namespace hvmm::daemon::vmproc {

// Fault.vcpu of a fault no vCPU thread took (the VMM's own access): the log's null.
inline constexpr uint32_t kNoVcpu = UINT32_MAX;

// hvmm.v1.ChangeReason of `reason` (the proto counts from 1: UNSPECIFIED is 0).
hvmm::v1::ChangeReason change_reason_to_proto(stage2::ChangeReason reason);
// The stage-2 reason of a proto value; UNSPECIFIED is `fallback`; unknown numbers are an
// error naming `field`.
Result<stage2::ChangeReason> change_reason_from_proto(int value, stage2::ChangeReason fallback,
                                                      const char* field);

// One fault record as the fault stream reports it.
hvmm::v1::Fault fault_to_proto(const vmm::FaultRecord& record);
// One run of a stage-2 dump.
hvmm::v1::Mapping mapping_to_proto(const stage2::MappedRange& range);

hvmm::v1::PageStateCounts page_counts_to_proto(const vmm::PageCounts& counts);
// The balloon's figures; nullopt (no balloon) gives present = false and zeros.
hvmm::v1::BalloonStats balloon_to_proto(const std::optional<vmm::BalloonStatistics>& balloon);
// The reclaim engine's counters and the policy in force (its --reclaim spelling).
hvmm::v1::ReclaimStats reclaim_stats_to_proto(const vmm::ReclaimStats& stats,
                                              const vmm::ReclaimPolicy& policy);
hvmm::v1::PoolStats pool_to_proto(const vmm::ReclaimStoreStats& pool);
// The idle-age bins; the estimate counts the bins younger than the policy's cold threshold.
hvmm::v1::WorkingSet working_set_to_proto(const vmm::WorkingSetEstimate& estimate,
                                          const vmm::ReclaimPolicy& policy);
hvmm::v1::KvmMmuStats kvm_mmu_to_proto(const vmm::KvmMmuStats& stats);
hvmm::v1::Stage2TlbStats tlb_to_proto(const vmm::Stage2TlbFigures& figures);
// One FaultCount per (kind, resolution) counted, in enum order.
void add_fault_counts(const vmm::FaultCounts& counts, hvmm::v1::MemoryStats& stats);

}  // namespace hvmm::daemon::vmproc
