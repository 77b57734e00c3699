// PVH boot data: the GDT, hvm_start_info v1, its memory map, module list and command line.
//
// Layout (below the kernel, which may not overlap kBootData; Firecracker-compatible
// addresses for the GDT and start info):
//   0x0500  GDT: null, code 0x08 (flat 32-bit), data 0x10 (flat), TSS 0x18
//   0x6000  hvm_start_info (56 bytes)
//   0x6040  hvm_modlist_entry[kMaxModules] (32 bytes each)
//   0x6100  hvm_memmap_table_entry[kMaxMemmapEntries] (24 bytes each)
//   0x7000  command line, NUL-terminated, at most kMaxCmdlineBytes including the NUL
// Modules (the initrd is module 0) are placed at the top of low RAM, away from the kernel.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/boot/elf_loader.h"
#include "hvmm/vmm/memory/guest_access.h"
#include "hvmm/vmm/memory/memory_layout.h"

namespace hvmm::vmm {

inline constexpr uint32_t kStartInfoMagic = 0x336ec578;
inline constexpr Ipa kGdtAddress{0x500};
inline constexpr Ipa kStartInfoAddress{0x6000};
inline constexpr Ipa kModlistAddress{0x6040};
inline constexpr Ipa kMemmapAddress{0x6100};
inline constexpr Ipa kCmdlineAddress{0x7000};
inline constexpr size_t kMaxModules = 6;
inline constexpr size_t kMaxMemmapEntries = 64;
inline constexpr size_t kMaxCmdlineBytes = 4096;
inline constexpr IpaRange kBootData{Ipa(0), 0x8000};

// GDT selectors the PVH entry state uses.
inline constexpr uint16_t kCodeSelector = 0x08;
inline constexpr uint16_t kDataSelector = 0x10;
inline constexpr uint16_t kTssSelector = 0x18;

// BootModule is one module handed to the kernel (the initrd is module 0).
struct BootModule {
  IpaRange range;
};

// BootInfo is everything the start info describes.
struct BootInfo {
  std::string cmdline;
  std::vector<RamRegion> ram;
  std::vector<BootModule> modules;
};

// Reject a command line that does not fit (or contains a NUL), naming its length.
Result<void> check_cmdline(const std::string& cmdline);

// Choose where a module of `size` bytes goes: the highest page-aligned spot in RAM below
// the MMIO hole that overlaps neither the kernel nor the boot data.
Result<IpaRange> place_module(uint64_t size, const std::vector<RamRegion>& ram,
                              const PvhKernel& kernel);

// Serialize the GDT, start info, module list, memory map and command line into guest
// memory. Returns the start info address (the entry EBX).
Result<Ipa> write_boot_data(GuestAccess& memory, const BootInfo& info);

}  // namespace hvmm::vmm
