// KvmMemslots: the MemslotSink that installs RegionMemslots' slots in a KVM VM, and the
// MemslotTable of what it installed (dirty tracking reads it from its own thread).
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/memory/memslots.h"

namespace hvmm::vmm {

class KvmMemslots final : public MemslotSink, public MemslotTable {
 public:
  // Install slots in `vm`, each with `flags` (KVM_MEM_LOG_DIRTY_PAGES with dirty tracking).
  explicit KvmMemslots(KvmVm& vm, uint32_t flags = 0) : vm_(vm), flags_(flags) {}
  // Install or (size 0) delete one read-write slot, and record it in the table.
  Result<void> set_memslot(const Memslot& slot, void* host) override;
  uint32_t slot_flags() const override { return flags_; }
  // Read the installed slots; a slot change waits until `reader` returns.
  void visit(const std::function<void(std::span<const Memslot>)>& reader) const override;

 private:
  KvmVm& vm_;
  const uint32_t flags_;
  mutable std::mutex lock_;  // held across each KVM call and each visit
  std::vector<Memslot> installed_;
};

}  // namespace hvmm::vmm
