// Fixtures shared by the dirty-tracking unit tests: a memslot table without KVM.
#pragma once

#include <linux/kvm.h>

#include <vector>

#include "hvmm/vmm/memory/memslots.h"

namespace hvmm::vmm::testing {

// FakeSlots plays KvmMemslots' table: the slots a test installed, in IPA order.
class FakeSlots final : public MemslotTable {
 public:
  void visit(const std::function<void(std::span<const Memslot>)>& reader) const override {
    ++visits;
    reader(slots);
  }
  std::vector<Memslot> slots;
  mutable int visits = 0;
};

// A logging slot `id` of `pages` pages at `ipa`, backed from memfd offset `offset`.
inline Memslot logging_slot(uint32_t id, uint64_t ipa, uint64_t pages, uint64_t offset = 0) {
  return Memslot{id, IpaRange{Ipa(ipa), pages * kPageSize}, HostOffset(offset),
                 KVM_MEM_LOG_DIRTY_PAGES};
}

}  // namespace hvmm::vmm::testing
