// KvmMemslots: memslots into KVM, and the table of the installed ones.
#include "hvmm/vmm/kvm/kvm_memslots.h"

#include <algorithm>

namespace hvmm::vmm {

// The lock is held across the ioctl, so a reader never names a slot KVM is changing (a
// dirty-log ioctl on a slot being recreated at another size would copy the wrong bitmap).
Result<void> KvmMemslots::set_memslot(const Memslot& slot, void* host) {
  std::lock_guard guard(lock_);
  HVMM_TRY(vm_.set_memslot(slot.slot, slot.range.start, slot.range.size, host, slot.flags));
  std::erase_if(installed_, [&](const Memslot& s) { return s.slot == slot.slot; });
  if (slot.range.size != 0) {
    installed_.push_back(slot);
    std::sort(installed_.begin(), installed_.end(),
              [](const Memslot& a, const Memslot& b) { return a.range.start < b.range.start; });
  }
  return Ok();
}

// Hold slot changes off while the reader runs.
void KvmMemslots::visit(const std::function<void(std::span<const Memslot>)>& reader) const {
  std::lock_guard guard(lock_);
  reader(installed_);
}

}  // namespace hvmm::vmm
