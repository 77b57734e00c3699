// KvmMemslots: the MemslotSink that applies MemslotSync's decisions to a KVM VM.
#pragma once

#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/memory/memslot_sync.h"

namespace hvmm::vmm {

class KvmMemslots final : public MemslotSink {
 public:
  explicit KvmMemslots(KvmVm& vm) : vm_(vm) {}
  // Install or delete one slot; read-only runs become KVM_MEM_READONLY slots.
  Result<void> set_memslot(const Memslot& slot, void* host) override {
    return vm_.set_memslot(slot.slot, slot.range.start, slot.range.size, host,
                           slot.read_only ? KVM_MEM_READONLY : 0);
  }

 private:
  KvmVm& vm_;
};

}  // namespace hvmm::vmm
