// The ELF reader and editor of the ELF loader's fuzz target (see elf_image.h).
#include "elf_image.h"

#include <elf.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace hvmm::vmm::fuzz {
namespace {

#define HVMM_FIELD(type, member)                 \
  PhdrField {                                    \
    offsetof(type, member), sizeof(type::member) \
  }

// A field's value, or nullopt when it lies past the end of the image.
std::optional<uint64_t> field(std::span<const uint8_t> image, uint64_t base, PhdrField f) {
  if (base > image.size() || f.offset + f.bytes > image.size() - base) {
    return std::nullopt;
  }
  return load_le(image, base + f.offset, f.bytes);
}

// Offset of the first byte after `value` rounded up to 4 (note fields are 4-byte aligned).
uint64_t align4(uint64_t value) {
  return (value + 3) & ~uint64_t{3};
}

// Scan the notes of one PT_NOTE segment for the PVH entry note.
std::optional<PvhNote> scan_notes(std::span<const uint8_t> notes, uint64_t base, unsigned index,
                                  bool& truncated) {
  uint64_t at = 0;
  while (at + 12 <= notes.size()) {
    const auto name_size = static_cast<uint32_t>(load_le(notes, at, 4));
    const auto desc_size = static_cast<uint32_t>(load_le(notes, at + 4, 4));
    const auto type = static_cast<uint32_t>(load_le(notes, at + 8, 4));
    const uint64_t name_at = at + 12;
    const uint64_t desc_at = name_at + align4(name_size);
    if (desc_at > notes.size() || align4(desc_size) > notes.size() - desc_at) {
      truncated = true;
      return std::nullopt;
    }
    if (name_size == 4 && std::memcmp(notes.data() + name_at, "Xen", 4) == 0 && type == 18) {
      PvhNote note{base + desc_at, desc_size, 0, index};
      if (desc_size == 4 || desc_size == 8) {
        note.desc_value = load_le(notes, desc_at, desc_size);
      }
      return note;
    }
    at = desc_at + align4(desc_size);
  }
  return std::nullopt;
}

// Write `headers` in the layout of `elf64` at the end of `image` and return their offset.
uint64_t append_headers(std::vector<uint8_t>& image, bool elf64,
                        const std::vector<ProgramHeader>& headers) {
  const unsigned entry_size = elf64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
  std::vector<uint8_t> table(headers.size() * entry_size, 0);
  for (size_t i = 0; i < headers.size(); ++i) {
    const uint64_t base = i * entry_size;
    const ProgramHeader& h = headers[i];
    store_le(table, base, 4, h.type);
    store_le(table, base + phdr_offset_field(elf64).offset, phdr_offset_field(elf64).bytes,
             h.offset);
    store_le(table, base + phdr_paddr_field(elf64).offset, phdr_paddr_field(elf64).bytes, h.paddr);
    store_le(table, base + phdr_filesz_field(elf64).offset, phdr_filesz_field(elf64).bytes,
             h.file_size);
    store_le(table, base + phdr_memsz_field(elf64).offset, phdr_memsz_field(elf64).bytes,
             h.mem_size);
  }
  return append_bytes(image, table);
}

}  // namespace

uint64_t load_le(std::span<const uint8_t> image, uint64_t offset, unsigned bytes) {
  uint64_t value = 0;
  for (unsigned i = 0; i < bytes; ++i) {
    if (offset + i < image.size()) {
      value |= uint64_t{image[offset + i]} << (8 * i);
    }
  }
  return value;
}

void store_le(std::vector<uint8_t>& image, uint64_t offset, unsigned bytes, uint64_t value) {
  for (unsigned i = 0; i < bytes; ++i) {
    if (offset + i < image.size()) {
      image[offset + i] = static_cast<uint8_t>(value >> (8 * i));
    }
  }
}

PhdrField phdr_offset_field(bool elf64) {
  return elf64 ? HVMM_FIELD(Elf64_Phdr, p_offset) : HVMM_FIELD(Elf32_Phdr, p_offset);
}
PhdrField phdr_paddr_field(bool elf64) {
  return elf64 ? HVMM_FIELD(Elf64_Phdr, p_paddr) : HVMM_FIELD(Elf32_Phdr, p_paddr);
}
PhdrField phdr_filesz_field(bool elf64) {
  return elf64 ? HVMM_FIELD(Elf64_Phdr, p_filesz) : HVMM_FIELD(Elf32_Phdr, p_filesz);
}
PhdrField phdr_memsz_field(bool elf64) {
  return elf64 ? HVMM_FIELD(Elf64_Phdr, p_memsz) : HVMM_FIELD(Elf32_Phdr, p_memsz);
}
PhdrField ehdr_phoff_field(bool elf64) {
  return elf64 ? HVMM_FIELD(Elf64_Ehdr, e_phoff) : HVMM_FIELD(Elf32_Ehdr, e_phoff);
}
PhdrField ehdr_phnum_field(bool elf64) {
  return elf64 ? HVMM_FIELD(Elf64_Ehdr, e_phnum) : HVMM_FIELD(Elf32_Ehdr, e_phnum);
}
PhdrField ehdr_phentsize_field(bool elf64) {
  return elf64 ? HVMM_FIELD(Elf64_Ehdr, e_phentsize) : HVMM_FIELD(Elf32_Ehdr, e_phentsize);
}

// The identification bytes choose the class; every header must fit inside the image.
std::optional<ElfLayout> read_layout(std::span<const uint8_t> image) {
  if (image.size() < EI_NIDENT || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0 ||
      image[EI_DATA] != ELFDATA2LSB ||
      (image[EI_CLASS] != ELFCLASS64 && image[EI_CLASS] != ELFCLASS32)) {
    return std::nullopt;
  }
  ElfLayout layout;
  layout.elf64 = image[EI_CLASS] == ELFCLASS64;
  const uint64_t header_size = layout.elf64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
  const uint64_t entry_size = layout.elf64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
  if (image.size() < header_size) {
    return std::nullopt;
  }
  layout.phoff = *field(image, 0, ehdr_phoff_field(layout.elf64));
  layout.phentsize = static_cast<uint16_t>(*field(image, 0, ehdr_phentsize_field(layout.elf64)));
  const uint64_t count = *field(image, 0, ehdr_phnum_field(layout.elf64));
  if (layout.phentsize < entry_size || layout.phoff > image.size()) {
    return std::nullopt;
  }
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t base = layout.phoff + i * layout.phentsize;
    const bool elf64 = layout.elf64;
    auto type = field(image, base, PhdrField{0, 4});
    auto offset = field(image, base, phdr_offset_field(elf64));
    auto paddr = field(image, base, phdr_paddr_field(elf64));
    auto file_size = field(image, base, phdr_filesz_field(elf64));
    auto mem_size = field(image, base, phdr_memsz_field(elf64));
    if (!type || !offset || !paddr || !file_size || !mem_size) {
      return std::nullopt;
    }
    layout.headers.push_back(
        ProgramHeader{static_cast<uint32_t>(*type), *offset, *paddr, *file_size, *mem_size, base});
  }
  return layout;
}

// PT_NOTE segments are scanned in program header order; a note cut short ends the search.
std::optional<PvhNote> find_pvh_note(std::span<const uint8_t> image, const ElfLayout& layout) {
  for (unsigned i = 0; i < layout.headers.size(); ++i) {
    const ProgramHeader& h = layout.headers[i];
    if (h.type != PT_NOTE || h.offset > image.size() || h.file_size > image.size() - h.offset) {
      continue;
    }
    bool truncated = false;
    auto note = scan_notes(image.subspan(h.offset, h.file_size), h.offset, i, truncated);
    if (note || truncated) {
      return note;
    }
  }
  return std::nullopt;
}

uint64_t append_bytes(std::vector<uint8_t>& image, std::span<const uint8_t> bytes) {
  image.resize((image.size() + 7) & ~size_t{7}, 0);
  const uint64_t at = image.size();
  image.insert(image.end(), bytes.begin(), bytes.end());
  return at;
}

std::vector<uint8_t> with_program_headers(std::span<const uint8_t> image, const ElfLayout& layout,
                                          const std::vector<ProgramHeader>& extra) {
  std::vector<uint8_t> out(image.begin(), image.end());
  std::vector<ProgramHeader> headers = layout.headers;
  headers.insert(headers.end(), extra.begin(), extra.end());
  const uint64_t table = append_headers(out, layout.elf64, headers);
  store_le(out, ehdr_phoff_field(layout.elf64).offset, ehdr_phoff_field(layout.elf64).bytes, table);
  store_le(out, ehdr_phnum_field(layout.elf64).offset, ehdr_phnum_field(layout.elf64).bytes,
           headers.size());
  store_le(out, ehdr_phentsize_field(layout.elf64).offset, ehdr_phentsize_field(layout.elf64).bytes,
           layout.elf64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr));
  return out;
}

std::vector<uint8_t> pvh_note_bytes(std::span<const uint8_t> descriptor) {
  std::vector<uint8_t> note(12 + 4, 0);
  store_le(note, 0, 4, 4);
  store_le(note, 4, 4, descriptor.size());
  store_le(note, 8, 4, 18);
  std::memcpy(note.data() + 12, "Xen", 4);
  note.insert(note.end(), descriptor.begin(), descriptor.end());
  note.resize(align4(note.size()), 0);
  return note;
}

// The largest end among the headers and every segment's file bytes that lie in the image.
std::span<const uint8_t> loadable_prefix(std::span<const uint8_t> image) {
  auto layout = read_layout(image);
  if (!layout) {
    return image;
  }
  uint64_t end = layout->elf64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
  end = std::max(end, layout->phoff + layout->headers.size() * layout->phentsize);
  for (const ProgramHeader& h : layout->headers) {
    if (h.offset <= image.size() && h.file_size <= image.size() - h.offset) {
      end = std::max(end, h.offset + h.file_size);
    }
  }
  return image.first(std::min<uint64_t>(end, image.size()));
}

}  // namespace hvmm::vmm::fuzz
