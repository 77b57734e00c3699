// What a VM must have enabled before dirty tracking can run: the step a Machine takes before
// it creates memslots (and, for the ring, vCPUs).
#pragma once

#include <cstdint>

#include "hvmm/base/result.h"
#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/reclaim/dirty/dirty_source.h"

namespace hvmm::vmm {

// Enable `tracking` on `vm`, which has no memslot and no vCPU yet: manual dirty-log protect
// for kLog, the dirty ring of `ring_entries` per vCPU for kRing. Returns the flags every
// memslot must then carry (KVM_MEM_LOG_DIRTY_PAGES: KVM tracks only slots that have it, for
// both kinds). A capability KVM lacks is an error naming it.
Result<uint32_t> enable_dirty_tracking(KvmVm& vm, DirtyTracking tracking, uint32_t ring_entries);

}  // namespace hvmm::vmm
