// Enabling dirty tracking on a new VM.
#include "hvmm/vmm/reclaim/dirty/dirty_tracking_setup.h"

#include <linux/kvm.h>

namespace hvmm::vmm {

// Both kinds need the slot flag; only the capability differs.
Result<uint32_t> enable_dirty_tracking(KvmVm& vm, DirtyTracking tracking, uint32_t ring_entries) {
  if (tracking == DirtyTracking::kRing) {
    HVMM_TRY(vm.enable_dirty_ring(ring_entries));
  } else {
    HVMM_TRY(vm.enable_manual_dirty_log_protect());
  }
  return uint32_t{KVM_MEM_LOG_DIRTY_PAGES};
}

}  // namespace hvmm::vmm
