// Translation-table level arithmetic shared by stage 2 (ARMv8-A, 4 KiB granule) and the guest's
// x86-64 stage 1: both resolve 9 bits per level above a 12-bit page offset.
//
// Levels are numbered from the page level up (0 = 4 KiB entries, 1 = 2 MiB, 2 = 1 GiB,
// 3 = 512 GiB), as Hafnium does: the arithmetic is the same for every table format, and the
// ARM ARM's "start level" or the SDM's PML4/PDPT/PD/PT names are derived where needed.
// Freestanding: the guest kernel uses it.
#pragma once

#include <cstdint>

#include "hvmm/base/address.h"

namespace hvmm {

inline constexpr unsigned kBitsPerLevel = 9;
inline constexpr unsigned kEntriesPerTable = 1u << kBitsPerLevel;

// Return the number of address bits below an entry at `level`.
constexpr unsigned level_shift(unsigned level) {
  return static_cast<unsigned>(kPageShift) + kBitsPerLevel * level;
}

// Return the bytes an entry at `level` spans.
constexpr uint64_t level_size(unsigned level) {
  return uint64_t{1} << level_shift(level);
}

// Return the index of `address` in a table at `level`.
constexpr unsigned level_index(uint64_t address, unsigned level) {
  return static_cast<unsigned>((address >> level_shift(level)) & (kEntriesPerTable - 1));
}

static_assert(level_size(1) == kLargePageSize && level_size(2) == kHugePageSize);

}  // namespace hvmm
