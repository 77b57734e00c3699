// KvmMemslots: the MemslotSink that installs RegionMemslots' slots in a KVM VM.
#pragma once

#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/memory/memslots.h"

namespace hvmm::vmm {

class KvmMemslots final : public MemslotSink {
 public:
  explicit KvmMemslots(KvmVm& vm) : vm_(vm) {}
  // Install or (size 0) delete one read-write slot.
  Result<void> set_memslot(const Memslot& slot, void* host) override {
    return vm_.set_memslot(slot.slot, slot.range.start, slot.range.size, host, 0);
  }

 private:
  KvmVm& vm_;
};

}  // namespace hvmm::vmm
