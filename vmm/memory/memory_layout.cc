// Placement of guest RAM around the 32-bit MMIO hole.
#include "hvmm/vmm/memory/memory_layout.h"

#include <algorithm>

namespace hvmm::vmm {

// RAM fills from 0 up to the hole, and any remainder starts at 4 GiB.
std::vector<RamRegion> ram_layout(uint64_t memory_size) {
  std::vector<RamRegion> regions;
  uint64_t low = std::min(memory_size, kMmioHoleStart);
  if (low > 0) {
    regions.push_back({IpaRange{Ipa(0), low}, HostOffset(0)});
  }
  if (memory_size > low) {
    regions.push_back({IpaRange{Ipa(kMmioHoleEnd), memory_size - low}, HostOffset(low)});
  }
  return regions;
}

// Keep the part of each region below `range` and the part above it.
std::vector<RamRegion> ram_without(const std::vector<RamRegion>& ram, IpaRange range) {
  std::vector<RamRegion> kept;
  for (const RamRegion& region : ram) {
    if (!region.range.overlaps(range)) {
      kept.push_back(region);
      continue;
    }
    if (region.range.start < range.start) {
      kept.push_back(
          {IpaRange{region.range.start, range.start - region.range.start}, region.offset});
    }
    if (range.end() < region.range.end()) {
      const uint64_t skipped = range.end() - region.range.start;
      kept.push_back(
          {IpaRange{range.end(), region.range.end() - range.end()}, region.offset + skipped});
    }
  }
  return kept;
}

// A range is inside RAM when one region contains both its first and last byte.
bool inside_ram(const std::vector<RamRegion>& ram, IpaRange range) {
  if (range.overflows()) {
    return false;
  }
  return std::any_of(ram.begin(), ram.end(), [&](const RamRegion& region) {
    return range.start >= region.range.start && range.end() <= region.range.end();
  });
}

}  // namespace hvmm::vmm
