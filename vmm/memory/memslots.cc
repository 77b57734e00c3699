// One KVM memslot per RAM region: installing them, and following a layout change.
#include "hvmm/vmm/memory/memslots.h"

#include <algorithm>

namespace hvmm::vmm {
namespace {

// The slot a region needs (its id is assigned when it is created).
Memslot slot_of(const RamRegion& region, uint32_t flags) {
  return Memslot{0, region.range, region.offset, flags};
}

}  // namespace

// The smallest slot id not in use.
uint32_t RegionMemslots::next_free_slot() const {
  uint32_t id = 0;
  while (std::any_of(slots_.begin(), slots_.end(),
                     [id](const Memslot& slot) { return slot.slot == id; })) {
    ++id;
  }
  return id;
}

// Delete what no region needs, then create what is missing (with the sink's flags), then keep
// IPA order.
Result<void> RegionMemslots::sync(const std::vector<RamRegion>& ram) {
  auto wanted = [&](const Memslot& slot) {
    return std::any_of(ram.begin(), ram.end(),
                       [&](const RamRegion& r) { return slot_of(r, 0).same_placement(slot); });
  };
  for (auto it = slots_.begin(); it != slots_.end();) {
    if (wanted(*it)) {
      ++it;
      continue;
    }
    Memslot removal = *it;
    removal.range.size = 0;
    HVMM_TRY(sink_.set_memslot(removal, nullptr));
    it = slots_.erase(it);
  }
  for (const RamRegion& region : ram) {
    Memslot slot = slot_of(region, sink_.slot_flags());
    if (std::any_of(slots_.begin(), slots_.end(),
                    [&](const Memslot& s) { return s.same_placement(slot); })) {
      continue;
    }
    auto host = memory_.guest_pointer(slot.offset, slot.range.size);
    HVMM_TRY(host);
    slot.slot = next_free_slot();
    HVMM_TRY(sink_.set_memslot(slot, *host));
    slots_.push_back(slot);
  }
  std::sort(slots_.begin(), slots_.end(),
            [](const Memslot& a, const Memslot& b) { return a.range.start < b.range.start; });
  return Ok();
}

}  // namespace hvmm::vmm
