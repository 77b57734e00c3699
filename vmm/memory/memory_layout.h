// The x86 guest-physical layout of an hvmm VM: where RAM goes around the 32-bit MMIO hole.
//
//   [0, min(ram, 3 GiB))          RAM, host offsets [0, ...)
//   [3 GiB, 4 GiB)                MMIO hole: IOAPIC 0xfec00000, LAPIC 0xfee00000, KVM's TSS
//   [4 GiB, 4 GiB + rest)         the RAM that did not fit below the hole
#pragma once

#include <cstdint>
#include <vector>

#include "hvmm/base/address.h"

namespace hvmm::vmm {

inline constexpr uint64_t kMmioHoleStart = uint64_t{3} << 30;
inline constexpr uint64_t kMmioHoleEnd = uint64_t{4} << 30;
// IPA bits of every VM's Stage2Map: 1 TiB covers the largest RAM hvmm accepts plus MMIO.
inline constexpr unsigned kIpaBits = 40;
// Accepted RAM sizes.
inline constexpr uint64_t kMinMemory = uint64_t{2} << 20;
inline constexpr uint64_t kMaxMemory = uint64_t{256} << 30;

// RamRegion is one guest-physical RAM range and where it starts in the memfd.
struct RamRegion {
  IpaRange range;
  HostOffset offset;
};

// Split `memory_size` bytes of RAM around the MMIO hole.
std::vector<RamRegion> ram_layout(uint64_t memory_size);

// `ram` without `range`: regions it covers go, regions it cuts shrink or split in two (the
// upper piece keeps the host offsets of its pages). Regions stay in IPA order.
std::vector<RamRegion> ram_without(const std::vector<RamRegion>& ram, IpaRange range);

// True when [start, start + size) lies entirely inside one region of `ram`.
bool inside_ram(const std::vector<RamRegion>& ram, IpaRange range);

}  // namespace hvmm::vmm
