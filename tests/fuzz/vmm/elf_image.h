// A small ELF program-header reader and editor for the ELF loader's fuzz target, written from
// the ELF format (System V gABI) and the PVH note layout, independently of vmm/boot/elf_loader.cc:
// the fuzz checks use it as an oracle, the corpus generator uses it to make structured variants.
//
// Only little-endian images and the fields the PVH loader depends on are covered: the ELF
// header's class, e_phoff, e_phentsize and e_phnum, and each program header's type, offset,
// physical address and sizes. Reads never go past the image; a field that does not fit is absent.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace hvmm::vmm::fuzz {

// One program header, widened to 64 bits.
struct ProgramHeader {
  uint32_t type = 0;
  uint64_t offset = 0;
  uint64_t paddr = 0;
  uint64_t file_size = 0;
  uint64_t mem_size = 0;
  uint64_t header_offset = 0;  // where this header sits in the image
};

// What the program headers of an image say; nullopt when the ELF header or the program
// header table does not fit in the image or is not a little-endian ELF32/ELF64 layout.
struct ElfLayout {
  bool elf64 = true;
  uint64_t phoff = 0;
  uint16_t phentsize = 0;
  std::vector<ProgramHeader> headers;
};
std::optional<ElfLayout> read_layout(std::span<const uint8_t> image);

// One Xen PVH entry note found in a PT_NOTE segment.
struct PvhNote {
  uint64_t desc_offset = 0;  // of the descriptor, in the image
  uint32_t desc_size = 0;
  uint64_t desc_value = 0;  // the descriptor's first 4 or 8 bytes (0 when it has another size)
  unsigned segment = 0;     // program header index of the PT_NOTE segment
};
// The first note named "Xen" of type 18 (XEN_ELFNOTE_PHYS32_ENTRY) in program header order,
// or nullopt when there is none or a note before it runs past its segment.
std::optional<PvhNote> find_pvh_note(std::span<const uint8_t> image, const ElfLayout& layout);

// Little-endian integer helpers on a byte image (the writes resize nothing: out-of-range
// writes are ignored, out-of-range reads give 0).
uint64_t load_le(std::span<const uint8_t> image, uint64_t offset, unsigned bytes);
void store_le(std::vector<uint8_t>& image, uint64_t offset, unsigned bytes, uint64_t value);

// Field offsets inside a program header of either class, and their widths.
struct PhdrField {
  unsigned offset;
  unsigned bytes;
};
PhdrField phdr_offset_field(bool elf64);
PhdrField phdr_paddr_field(bool elf64);
PhdrField phdr_filesz_field(bool elf64);
PhdrField phdr_memsz_field(bool elf64);
// ELF header fields.
PhdrField ehdr_phoff_field(bool elf64);
PhdrField ehdr_phnum_field(bool elf64);
PhdrField ehdr_phentsize_field(bool elf64);

// Append a new program header table to the image holding the existing headers plus `extra`
// (their header_offset is ignored) and point the ELF header at it. The extra headers' offsets
// may point at bytes appended with `append_bytes` first.
std::vector<uint8_t> with_program_headers(std::span<const uint8_t> image, const ElfLayout& layout,
                                          const std::vector<ProgramHeader>& extra);
// Append `bytes` at the end of `image`, aligned to 8, and return their offset.
uint64_t append_bytes(std::vector<uint8_t>& image, std::span<const uint8_t> bytes);

// The bytes of a PVH note: name "Xen", type 18, the given descriptor.
std::vector<uint8_t> pvh_note_bytes(std::span<const uint8_t> descriptor);

// The prefix of the image that the loader reads: the ELF header, the program headers and
// every segment's file bytes (debug sections and section headers after them are cut).
std::span<const uint8_t> loadable_prefix(std::span<const uint8_t> image);

}  // namespace hvmm::vmm::fuzz
