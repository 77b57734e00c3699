// Parsing, placement checks and loading of PVH ELF kernels.
#include "hvmm/vmm/boot/elf_loader.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <optional>

namespace hvmm::vmm {
namespace {

// Copy a T out of the image at `offset`, or nullopt when it would run past the end.
template <typename T>
std::optional<T> read_at(std::span<const uint8_t> image, uint64_t offset) {
  if (offset > image.size() || sizeof(T) > image.size() - offset) {
    return std::nullopt;
  }
  T value;
  std::memcpy(&value, image.data() + offset, sizeof(T));
  return value;
}

// True when [offset, offset + size) lies inside the image.
bool in_file(std::span<const uint8_t> image, uint64_t offset, uint64_t size) {
  return offset <= image.size() && size <= image.size() - offset;
}

// An invalid-argument Error for a malformed kernel image.
Error bad_kernel(const char* reason) {
  return make_error(ErrorCode::kInvalidArgument, "invalid kernel: {}", reason);
}

// Look for the PVH entry among the notes of one PT_NOTE segment.
Result<std::optional<Ipa>> find_pvh_note(std::span<const uint8_t> notes, unsigned index) {
  uint64_t offset = 0;
  while (offset + 12 <= notes.size()) {
    uint32_t header[3];
    std::memcpy(header, notes.data() + offset, sizeof(header));
    uint64_t name_size = align_up(header[0], 4);
    uint64_t desc_size = align_up(header[1], 4);
    uint64_t name_at = offset + 12;
    uint64_t desc_at = name_at + name_size;
    if (desc_at > notes.size() || desc_size > notes.size() - desc_at) {
      return make_error(ErrorCode::kInvalidArgument,
                        "invalid kernel: note at offset {:#x} of PT_NOTE segment {} is truncated",
                        offset, index);
    }
    bool xen = header[0] == 4 && std::memcmp(notes.data() + name_at, "Xen", 4) == 0;
    if (xen && header[2] == kXenElfNotePhys32Entry) {
      if (header[1] != 4 && header[1] != 8) {
        return make_error(ErrorCode::kInvalidArgument,
                          "invalid kernel: PVH entry note has a {}-byte descriptor (need 4 or 8)",
                          header[1]);
      }
      // An 8-byte descriptor (Linux emits `.quad`) is still a 32-bit entry: the high half
      // must be zero, or the kernel would be entered somewhere else than it asked.
      uint64_t entry = 0;
      std::memcpy(&entry, notes.data() + desc_at, header[1]);
      if (entry > UINT32_MAX) {
        return make_error(ErrorCode::kInvalidArgument,
                          "invalid kernel: PVH entry note's 8-byte descriptor {:#x} does not fit "
                          "in 32 bits (the PVH entry is a 32-bit physical address)",
                          entry);
      }
      return std::optional<Ipa>(Ipa(entry));
    }
    offset = desc_at + desc_size;
  }
  return std::optional<Ipa>();
}

// Refuse two PT_LOAD segments that share guest-physical bytes: the later one would silently
// overwrite the first. Sorted by start, an overlap always shows between neighbours, so this
// is O(n log n) even for the 65535 segments a hostile header can declare.
Result<void> check_segments_disjoint(const std::vector<KernelSegment>& segments) {
  std::vector<const KernelSegment*> sorted;
  for (const KernelSegment& segment : segments) {
    sorted.push_back(&segment);
  }
  std::sort(sorted.begin(), sorted.end(), [](const KernelSegment* a, const KernelSegment* b) {
    return a->range.start < b->range.start;
  });
  for (size_t i = 1; i < sorted.size(); ++i) {
    // Name the pair in program-header order, as a person reading `readelf -l` sees it.
    const KernelSegment* first = sorted[i - 1];
    const KernelSegment* second = sorted[i];
    if (second->index < first->index) {
      std::swap(first, second);
    }
    if (first->range.overlaps(second->range)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "invalid kernel: PT_LOAD segments {} at {} and {} at {} overlap in "
                        "guest-physical memory",
                        first->index, first->range, second->index, second->range);
    }
  }
  return Ok();
}

// The class-specific part of parsing: headers of type Ehdr/Phdr.
template <typename Ehdr, typename Phdr>
Result<PvhKernel> parse_headers(std::span<const uint8_t> image, uint16_t machine) {
  auto header = read_at<Ehdr>(image, 0);
  if (!header) {
    return bad_kernel("truncated ELF header");
  }
  if (header->e_machine != machine) {
    return make_error(ErrorCode::kInvalidArgument,
                      "invalid kernel: ELF machine {} is not {} (x86-64 needs ELF64 with "
                      "EM_X86_64, i386 needs ELF32 with EM_386)",
                      header->e_machine, machine == EM_X86_64 ? "EM_X86_64 (62)" : "EM_386 (3)");
  }
  if (header->e_type != ET_EXEC) {
    return make_error(ErrorCode::kInvalidArgument,
                      "invalid kernel: ELF type {} is not an executable (ET_EXEC)", header->e_type);
  }
  if (header->e_phnum == 0) {
    return bad_kernel("no program headers");
  }
  if (header->e_phentsize != sizeof(Phdr) ||
      !in_file(image, header->e_phoff, uint64_t{header->e_phnum} * sizeof(Phdr))) {
    return make_error(ErrorCode::kInvalidArgument,
                      "invalid kernel: program headers ({} of {} bytes at {:#x}) are truncated or "
                      "malformed",
                      header->e_phnum, header->e_phentsize, uint64_t{header->e_phoff});
  }
  PvhKernel kernel;
  kernel.elf64 = sizeof(Ehdr) == sizeof(Elf64_Ehdr);
  std::optional<Ipa> entry;
  for (unsigned i = 0; i < header->e_phnum; ++i) {
    Phdr phdr = *read_at<Phdr>(image, header->e_phoff + uint64_t{i} * sizeof(Phdr));
    if (phdr.p_type != PT_LOAD && phdr.p_type != PT_NOTE) {
      continue;
    }
    if (!in_file(image, phdr.p_offset, phdr.p_filesz)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "invalid kernel: segment {} file data [{:#x}, {:#x}) is beyond the end of "
                        "the {}-byte file",
                        i, uint64_t{phdr.p_offset}, uint64_t{phdr.p_offset} + phdr.p_filesz,
                        image.size());
    }
    if (phdr.p_type == PT_NOTE) {
      auto found = find_pvh_note(image.subspan(phdr.p_offset, phdr.p_filesz), i);
      HVMM_TRY(found);
      if (*found && !entry) {
        entry = **found;
      }
      continue;
    }
    IpaRange range{Ipa(phdr.p_paddr), phdr.p_memsz};
    if (phdr.p_filesz > phdr.p_memsz || range.overflows()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "invalid kernel: segment {} has file size {:#x} > memory size {:#x} or "
                        "wraps around",
                        i, uint64_t{phdr.p_filesz}, uint64_t{phdr.p_memsz});
    }
    if (range.size > 0) {
      kernel.segments.push_back(KernelSegment{i, range, phdr.p_offset, phdr.p_filesz});
    }
  }
  if (kernel.segments.empty()) {
    return bad_kernel("no PT_LOAD segment");
  }
  HVMM_TRY(check_segments_disjoint(kernel.segments));
  if (!entry) {
    return bad_kernel(
        "no PVH entry note (Xen ELF note type 18, XEN_ELFNOTE_PHYS32_ENTRY): not a PVH kernel");
  }
  kernel.entry = *entry;
  bool entry_loaded = false;
  for (const KernelSegment& segment : kernel.segments) {
    entry_loaded = entry_loaded || (segment.range.contains(kernel.entry) &&
                                    kernel.entry - segment.range.start < segment.file_size);
  }
  if (!entry_loaded) {
    return make_error(ErrorCode::kInvalidArgument,
                      "invalid kernel: PVH entry {} is not inside any PT_LOAD segment's file data",
                      kernel.entry);
  }
  return kernel;
}

}  // namespace

// Check the identification bytes, then parse with the class-specific header layout.
Result<PvhKernel> parse_pvh_kernel(std::span<const uint8_t> image) {
  if (image.size() < SELFMAG || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0) {
    return bad_kernel("not an ELF file (bad magic)");
  }
  if (image.size() < EI_NIDENT) {
    return bad_kernel("truncated ELF header");
  }
  if (image[EI_DATA] != ELFDATA2LSB) {
    return bad_kernel("not a little-endian ELF file, so not x86");
  }
  if (image[EI_CLASS] == ELFCLASS64) {
    return parse_headers<Elf64_Ehdr, Elf64_Phdr>(image, EM_X86_64);
  }
  if (image[EI_CLASS] == ELFCLASS32) {
    return parse_headers<Elf32_Ehdr, Elf32_Phdr>(image, EM_386);
  }
  return make_error(ErrorCode::kInvalidArgument, "invalid kernel: unknown ELF class {}",
                    image[EI_CLASS]);
}

// Every segment must sit in RAM and stay clear of the boot data.
Result<void> check_kernel_placement(const PvhKernel& kernel, const std::vector<RamRegion>& ram,
                                    IpaRange boot_data) {
  for (const KernelSegment& segment : kernel.segments) {
    if (!inside_ram(ram, segment.range)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "invalid kernel: segment {} at {} is outside guest RAM (raise memory_bytes "
                        "or relink the kernel)",
                        segment.index, segment.range);
    }
    if (segment.range.overlaps(boot_data)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "invalid kernel: segment {} at {} overlaps the boot data at {}",
                        segment.index, segment.range, boot_data);
    }
  }
  return Ok();
}

// Copy each segment's file bytes to its physical address.
Result<void> load_kernel(const PvhKernel& kernel, std::span<const uint8_t> image,
                         GuestAccess& memory) {
  for (const KernelSegment& segment : kernel.segments) {
    auto bytes = image.subspan(segment.file_offset, segment.file_size);
    auto written = memory.write(segment.range.start, bytes);
    if (!written) {
      return make_error(written.error().code, "loading kernel segment {}: {}", segment.index,
                        written.error().message);
    }
  }
  return Ok();
}

}  // namespace hvmm::vmm
