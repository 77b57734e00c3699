// The PVH ELF loader: any x86 kernel that carries a PVH entry note, not only ours.
//
// A PVH kernel is an ELF32 (i386) or ELF64 (x86-64) executable with a Xen ELF note of type
// 18 (XEN_ELFNOTE_PHYS32_ENTRY) in a PT_NOTE segment giving the 32-bit physical entry point.
// Its PT_LOAD segments are placed at their physical addresses (p_paddr). Parsing is
// separate from placement and loading, so every rejection is testable without KVM; each
// rejection names the offending header, segment or address.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/memory/guest_access.h"
#include "hvmm/vmm/memory/memory_layout.h"

namespace hvmm::vmm {

inline constexpr uint32_t kXenElfNotePhys32Entry = 18;

// KernelSegment is one PT_LOAD: where it goes and which file bytes fill it.
struct KernelSegment {
  unsigned index = 0;  // program header index, for messages
  IpaRange range;      // [p_paddr, p_paddr + p_memsz)
  uint64_t file_offset = 0;
  uint64_t file_size = 0;
};

// PvhKernel is a parsed, structurally valid PVH kernel image.
struct PvhKernel {
  Ipa entry;  // 32-bit physical entry point from the PVH note
  bool elf64 = true;
  std::vector<KernelSegment> segments;
};

// Parse and validate an ELF image: magic, class, machine, type, header bounds, segment
// bounds and the PVH note.
Result<PvhKernel> parse_pvh_kernel(std::span<const uint8_t> image);

// Check that every segment lies inside RAM and none overlaps `boot_data` (the range where
// the VMM writes the GDT, start info, memory map and command line).
Result<void> check_kernel_placement(const PvhKernel& kernel, const std::vector<RamRegion>& ram,
                                    IpaRange boot_data);

// Copy the segments' file bytes into guest memory. The memory must be freshly zeroed (as a
// new memfd is), so the zero-fill part of each segment is left untouched and costs no RSS.
Result<void> load_kernel(const PvhKernel& kernel, std::span<const uint8_t> image,
                         GuestAccess& memory);

}  // namespace hvmm::vmm
