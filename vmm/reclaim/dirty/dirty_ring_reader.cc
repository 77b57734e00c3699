// The harvest of one dirty ring, with the ordering the KVM ABI asks for.
#include "hvmm/vmm/reclaim/dirty/dirty_ring_reader.h"

#include <atomic>

namespace hvmm::vmm {

// An entry is published when DIRTY is set and RESET is not (01b); 00b is not yet written and
// 1Xb is one already harvested that KVM has not recycled (the ring has wrapped onto entries
// the reset did not reach yet): both end the harvest.
uint64_t DirtyRingReader::harvest(const std::function<void(DirtyGfn)>& collect) {
  if (ring_.empty()) {
    return 0;
  }
  const uint32_t mask = static_cast<uint32_t>(ring_.size() - 1);
  uint64_t taken = 0;
  while (taken < ring_.size()) {
    kvm_dirty_gfn& entry = ring_[fetch_ & mask];
    std::atomic_ref<uint32_t> flags(entry.flags);
    const uint32_t state = flags.load(std::memory_order_acquire);
    if ((state & KVM_DIRTY_GFN_F_MASK) != KVM_DIRTY_GFN_F_DIRTY) {
      break;
    }
    collect(DirtyGfn{entry.slot, entry.offset});
    flags.store(KVM_DIRTY_GFN_F_RESET, std::memory_order_release);
    ++fetch_;
    ++taken;
  }
  return taken;
}

}  // namespace hvmm::vmm
