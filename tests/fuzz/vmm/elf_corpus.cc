// Seed variants and mutations for the ELF loader fuzz target (see elf_corpus.h).
#include "elf_corpus.h"

#include <elf.h>

#include <algorithm>
#include <set>

#include "elf_image.h"

namespace hvmm::vmm::fuzz {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

// Collects named variants of one seed.
class Variants {
 public:
  Variants(const std::string& seed, std::span<const uint8_t> image)
      : seed_(seed), image_(image.begin(), image.end()) {}

  const std::vector<uint8_t>& image() const { return image_; }
  std::vector<uint8_t> copy() const { return image_; }
  void add(const std::string& variant, std::vector<uint8_t> bytes) {
    entries_.push_back({seed_ + "." + variant, std::move(bytes)});
  }
  // A copy with the `bytes`-wide field at `offset` set to `value`.
  void add_field(const std::string& variant, uint64_t offset, unsigned bytes, uint64_t value) {
    std::vector<uint8_t> out = copy();
    store_le(out, offset, bytes, value);
    add(variant, std::move(out));
  }
  std::vector<CorpusEntry> take() { return std::move(entries_); }

 private:
  std::string seed_;
  std::vector<uint8_t> image_;
  std::vector<CorpusEntry> entries_;
};

// Cuts at every boundary the parser crosses: the magic, e_ident, the header, the program
// header table, and inside and at the end of each segment's file bytes.
void add_truncations(Variants& v, const ElfLayout& layout) {
  const uint64_t size = v.image().size();
  const uint64_t header = layout.elf64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
  const uint64_t table_end = layout.phoff + layout.headers.size() * layout.phentsize;
  std::set<uint64_t> cuts = {0, 4, EI_NIDENT, header - 1, header, table_end - 1, size - 1};
  cuts.insert(layout.phoff + layout.phentsize / 2);
  for (const ProgramHeader& h : layout.headers) {
    cuts.insert(h.offset + h.file_size / 2);
    cuts.insert(h.offset + h.file_size - 1);
  }
  for (uint64_t cut : cuts) {
    if (cut < size) {
      v.add("cut" + std::to_string(cut),
            std::vector<uint8_t>(v.image().begin(), v.image().begin() + static_cast<long>(cut)));
    }
  }
}

// ELF header fields at edge values: class, byte order, type, machine, program header table.
void add_header_edits(Variants& v, const ElfLayout& layout) {
  const bool elf64 = layout.elf64;
  const uint64_t size = v.image().size();
  v.add_field("class-flipped", EI_CLASS, 1, elf64 ? ELFCLASS32 : ELFCLASS64);
  v.add_field("class-none", EI_CLASS, 1, ELFCLASSNONE);
  v.add_field("big-endian", EI_DATA, 1, ELFDATA2MSB);
  v.add_field("type-dyn", offsetof(Elf64_Ehdr, e_type), 2, ET_DYN);
  v.add_field("machine-aarch64", offsetof(Elf64_Ehdr, e_machine), 2, EM_AARCH64);
  v.add_field("machine-other-x86", offsetof(Elf64_Ehdr, e_machine), 2, elf64 ? EM_386 : EM_X86_64);
  const PhdrField phnum = ehdr_phnum_field(elf64);
  const PhdrField phoff = ehdr_phoff_field(elf64);
  const PhdrField phentsize = ehdr_phentsize_field(elf64);
  v.add_field("phnum-0", phnum.offset, phnum.bytes, 0);
  v.add_field("phnum-max", phnum.offset, phnum.bytes, 0xffff);
  v.add_field("phnum-plus1", phnum.offset, phnum.bytes, layout.headers.size() + 1);
  v.add_field("phentsize-plus1", phentsize.offset, phentsize.bytes, layout.phentsize + 1u);
  v.add_field("phentsize-0", phentsize.offset, phentsize.bytes, 0);
  v.add_field("phoff-eof", phoff.offset, phoff.bytes, size);
  v.add_field("phoff-max", phoff.offset, phoff.bytes, ~uint64_t{0});
  v.add_field("phoff-minus1", phoff.offset, phoff.bytes, layout.phoff - 1);
}

// One PT_LOAD's fields at edge values: sizes, file offset, and physical addresses in the boot
// data, the MMIO hole, past 128 MiB, above 4 GiB and at the top of the address space.
void add_load_edits(Variants& v, const ElfLayout& layout, unsigned index) {
  const bool elf64 = layout.elf64;
  const ProgramHeader& h = layout.headers[index];
  const uint64_t base = h.header_offset;
  const std::string name = "load" + std::to_string(index) + "-";
  const uint64_t all_ones = elf64 ? ~uint64_t{0} : 0xffffffff;
  const PhdrField offset = phdr_offset_field(elf64);
  const PhdrField paddr = phdr_paddr_field(elf64);
  const PhdrField filesz = phdr_filesz_field(elf64);
  const PhdrField memsz = phdr_memsz_field(elf64);
  v.add_field(name + "filesz-gt-memsz", base + filesz.offset, filesz.bytes, h.mem_size + 1);
  v.add_field(name + "filesz-max", base + filesz.offset, filesz.bytes, all_ones);
  v.add_field(name + "offset-eof", base + offset.offset, offset.bytes, v.image().size());
  v.add_field(name + "offset-max", base + offset.offset, offset.bytes, all_ones & ~0xfffull);
  v.add_field(name + "memsz-0", base + memsz.offset, memsz.bytes, 0);
  v.add_field(name + "memsz-1tib", base + memsz.offset, memsz.bytes,
              elf64 ? uint64_t{1} << 40 : 0xfffff000);
  v.add_field(name + "paddr-0", base + paddr.offset, paddr.bytes, 0);
  v.add_field(name + "paddr-boot-data", base + paddr.offset, paddr.bytes, 0x6000);
  v.add_field(name + "paddr-mmio-hole", base + paddr.offset, paddr.bytes, 3 * kGiB);
  v.add_field(name + "paddr-ends-past-128m", base + paddr.offset, paddr.bytes, 128 * kMiB - 0x1000);
  v.add_field(name + "paddr-top", base + paddr.offset, paddr.bytes, all_ones & ~0xfffull);
  if (elf64) {
    v.add_field(name + "paddr-above-4g", base + paddr.offset, paddr.bytes, 4 * kGiB + kMiB);
  }
}

// The PVH note's header fields at edge values (the descriptor size, the type) and a
// PT_NOTE segment cut inside the note.
void add_note_edits(Variants& v, const ElfLayout& layout, const PvhNote& note) {
  const uint64_t desc_size_at = note.desc_offset - 12;
  const uint64_t type_at = note.desc_offset - 8;
  v.add_field("note-desc8-in-place", desc_size_at, 4, 8);
  v.add_field("note-desc0", desc_size_at, 4, 0);
  v.add_field("note-desc-max", desc_size_at, 4, 0xffffffff);
  v.add_field("note-type1", type_at, 4, 1);
  v.add_field("note-entry-0", note.desc_offset, 4, 0);
  const ProgramHeader& h = layout.headers[note.segment];
  const PhdrField filesz = phdr_filesz_field(layout.elf64);
  v.add_field("note-segment-cut", h.header_offset + filesz.offset, filesz.bytes,
              h.file_size >= 4 ? h.file_size - 4 : 0);
}

// A copy whose original PVH note no longer counts (type 1), with a new PT_NOTE at the end
// that holds a PVH note with `descriptor`.
std::vector<uint8_t> with_new_pvh_note(const Variants& v, const ElfLayout& layout,
                                       const PvhNote& note, std::span<const uint8_t> descriptor) {
  std::vector<uint8_t> out = v.copy();
  store_le(out, note.desc_offset - 8, 4, 1);
  const std::vector<uint8_t> bytes = pvh_note_bytes(descriptor);
  ProgramHeader added;
  added.type = PT_NOTE;
  added.offset = append_bytes(out, bytes);
  added.file_size = bytes.size();
  added.mem_size = bytes.size();
  return with_program_headers(out, layout, {added});
}

// Descriptors of 2, 8 (high half zero and not) and 12 bytes holding the same entry.
void add_new_notes(Variants& v, const ElfLayout& layout, const PvhNote& note) {
  const auto entry = static_cast<uint32_t>(note.desc_value);
  std::vector<uint8_t> desc(12, 0);
  store_le(desc, 0, 4, entry);
  v.add("note-desc8-high-zero", with_new_pvh_note(v, layout, note, std::span(desc).first(8)));
  v.add("note-desc12", with_new_pvh_note(v, layout, note, desc));
  v.add("note-desc2", with_new_pvh_note(v, layout, note, std::span(desc).first(2)));
  store_le(desc, 4, 4, 1);
  v.add("note-desc8-high-set", with_new_pvh_note(v, layout, note, std::span(desc).first(8)));
  // A second, later PVH note with another entry: the first one counts.
  std::vector<uint8_t> second(4, 0);
  store_le(second, 0, 4, entry + 1);
  const std::vector<uint8_t> bytes = pvh_note_bytes(second);
  std::vector<uint8_t> out = v.copy();
  ProgramHeader added;
  added.type = PT_NOTE;
  added.offset = append_bytes(out, bytes);
  added.file_size = bytes.size();
  added.mem_size = bytes.size();
  v.add("note-second", with_program_headers(out, layout, {added}));
}

// Extra PT_LOAD headers: a duplicate of the first (same bytes, same place), one that overlaps
// its second half, and one that starts right after the last segment (valid).
void add_extra_loads(Variants& v, const ElfLayout& layout, const ProgramHeader& first) {
  ProgramHeader duplicate = first;
  v.add("load-duplicate", with_program_headers(v.image(), layout, {duplicate}));
  ProgramHeader overlapping = first;
  overlapping.paddr = first.paddr + first.mem_size / 2;
  v.add("load-overlapping", with_program_headers(v.image(), layout, {overlapping}));
  uint64_t end = 0;
  for (const ProgramHeader& h : layout.headers) {
    if (h.type == PT_LOAD) {
      end = std::max(end, h.paddr + h.mem_size);
    }
  }
  ProgramHeader after = first;
  after.paddr = (end + 0xfff) & ~uint64_t{0xfff};
  v.add("load-after-last", with_program_headers(v.image(), layout, {after}));
}

// FNV-1a of the seed name: a fixed, portable seed for its random variants.
uint64_t name_hash(const std::string& name) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (char c : name) {
    hash = (hash ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  }
  return hash;
}

// Values a mutated header field takes: edges of sizes, addresses and the hvmm layout.
uint64_t interesting_value(std::mt19937_64& random, uint64_t size, uint64_t old_value) {
  const uint64_t values[] = {0,
                             1,
                             4,
                             8,
                             0x1000,
                             0x6000,
                             0x8000,
                             size,
                             size - 1,
                             old_value + 1,
                             old_value - 1,
                             old_value * 2,
                             0x7fffffff,
                             0xffffffff,
                             128 * kMiB,
                             3 * kGiB,
                             4 * kGiB,
                             uint64_t{1} << 63,
                             ~uint64_t{0},
                             random()};
  return values[random() % std::size(values)];
}

// Set one ELF or program header field (or a note word) to an interesting value.
void mutate_field(std::vector<uint8_t>& image, std::mt19937_64& random) {
  auto layout = read_layout(image);
  if (!layout || layout->headers.empty()) {
    store_le(image, random() % std::max<size_t>(image.size(), 1), 4,
             interesting_value(random, image.size(), 0));
    return;
  }
  const bool elf64 = layout->elf64;
  const PhdrField header_fields[] = {ehdr_phoff_field(elf64), ehdr_phnum_field(elf64),
                                     ehdr_phentsize_field(elf64)};
  const PhdrField phdr_fields[] = {PhdrField{0, 4}, phdr_offset_field(elf64),
                                   phdr_paddr_field(elf64), phdr_filesz_field(elf64),
                                   phdr_memsz_field(elf64)};
  uint64_t offset;
  unsigned bytes;
  if (random() % 5 == 0) {
    const PhdrField f = header_fields[random() % std::size(header_fields)];
    offset = f.offset;
    bytes = f.bytes;
  } else {
    const ProgramHeader& h = layout->headers[random() % layout->headers.size()];
    const PhdrField f = phdr_fields[random() % std::size(phdr_fields)];
    offset = h.header_offset + f.offset;
    bytes = f.bytes;
    if (h.type == PT_NOTE && random() % 3 == 0 && h.file_size >= 4) {
      offset = h.offset + 4 * (random() % std::max<uint64_t>(h.file_size / 4, 1));
      bytes = 4;
    }
  }
  store_le(image, offset, bytes,
           interesting_value(random, image.size(), load_le(image, offset, bytes)));
}

// Flip 1-4 bytes, mostly among the headers at the start.
void flip_bytes(std::vector<uint8_t>& image, std::mt19937_64& random) {
  if (image.empty()) {
    return;
  }
  const unsigned flips = 1 + random() % 4;
  for (unsigned i = 0; i < flips; ++i) {
    const uint64_t span = random() % 4 != 0 ? std::min<uint64_t>(image.size(), 512) : image.size();
    image[random() % span] ^= static_cast<uint8_t>(1 + random() % 255);
  }
}

}  // namespace

std::vector<CorpusEntry> make_variants(const std::string& seed_name,
                                       std::span<const uint8_t> image) {
  Variants v(seed_name, loadable_prefix(image));
  v.add("orig", v.copy());
  auto layout = read_layout(v.image());
  if (!layout) {
    return v.take();
  }
  add_truncations(v, *layout);
  add_header_edits(v, *layout);
  const ProgramHeader* first_load = nullptr;
  unsigned loads = 0;
  for (unsigned i = 0; i < layout->headers.size() && loads < 4; ++i) {
    if (layout->headers[i].type == PT_LOAD) {
      first_load = first_load != nullptr ? first_load : &layout->headers[i];
      add_load_edits(v, *layout, i);
      ++loads;
    }
  }
  if (first_load != nullptr) {
    add_extra_loads(v, *layout, *first_load);
  }
  if (auto note = find_pvh_note(v.image(), *layout)) {
    add_note_edits(v, *layout, *note);
    add_new_notes(v, *layout, *note);
  }
  std::mt19937_64 random(name_hash(seed_name));
  for (unsigned i = 0; i < 8; ++i) {
    v.add("random" + std::to_string(i), mutate(v.image(), random));
  }
  return v.take();
}

std::vector<uint8_t> mutate(std::span<const uint8_t> image, std::mt19937_64& random) {
  std::vector<uint8_t> out(image.begin(), image.end());
  const unsigned steps = 1 + random() % 2;
  for (unsigned step = 0; step < steps; ++step) {
    switch (random() % 4) {
      case 0:
        flip_bytes(out, random);
        break;
      case 1:
      case 2:
        mutate_field(out, random);
        break;
      default:
        out.resize(random() % (out.size() + 1));
        break;
    }
  }
  return out;
}

}  // namespace hvmm::vmm::fuzz
