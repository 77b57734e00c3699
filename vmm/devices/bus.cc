// The device bus: range registration with overlap checks and O(log n) dispatch.
#include "hvmm/vmm/devices/bus.h"

#include "hvmm/base/address.h"

namespace hvmm::vmm {

// Insert the range after checking it against its neighbours (the ranges are disjoint, so
// only the one before and the one after can overlap).
Result<void> Bus::add(uint64_t base, uint64_t size, std::string name, BusDevice& device) {
  if (size == 0 || base + size < base) {
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: {} claims an empty or wrapping range "
                      "[{:#x}, +{:#x})",
                      space_, name, base, size);
  }
  auto after = ranges_.lower_bound(base);
  auto conflict = [&](std::map<uint64_t, Range>::const_iterator it) -> Result<void> {
    if (it != ranges_.end() && ranges_overlap(base, size, it->first, it->second.size)) {
      return make_error(ErrorCode::kAlreadyExists,
                        "{}: {} at [{:#x}, {:#x}) overlaps {} at [{:#x}, {:#x})", space_, name,
                        base, base + size, it->second.name, it->first, it->first + it->second.size);
    }
    return Ok();
  };
  HVMM_TRY(conflict(after));
  if (after != ranges_.begin()) {
    HVMM_TRY(conflict(std::prev(after)));
  }
  ranges_.emplace(base, Range{size, std::move(name), &device});
  return Ok();
}

// The last range starting at or below `address`, if it covers the whole access.
std::optional<BusHit> Bus::find(uint64_t address, uint64_t size) const {
  auto it = ranges_.upper_bound(address);
  if (it == ranges_.begin()) {
    return std::nullopt;
  }
  --it;
  const uint64_t offset = address - it->first;
  if (offset >= it->second.size || size > it->second.size - offset) {
    return std::nullopt;
  }
  return BusHit{it->second.device, offset};
}

// Hand a read to the device that claims it.
bool Bus::read(uint64_t address, std::span<uint8_t> data) const {
  auto hit = find(address, data.size());
  if (hit) {
    hit->device->bus_read(hit->offset, data);
  }
  return hit.has_value();
}

// Hand a write to the device that claims it.
bool Bus::write(uint64_t address, std::span<const uint8_t> data) const {
  auto hit = find(address, data.size());
  if (hit) {
    hit->device->bus_write(hit->offset, data);
  }
  return hit.has_value();
}

}  // namespace hvmm::vmm
