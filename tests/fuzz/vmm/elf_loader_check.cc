// The ELF loader fuzz body (see elf_loader_check.h).
#include "elf_loader_check.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "elf_image.h"
#include "hvmm/vmm/boot/boot_data.h"
#include "hvmm/vmm/boot/elf_loader.h"
#include "hvmm/vmm/memory/guest_access.h"
#include "hvmm/vmm/memory/memory_layout.h"

namespace hvmm::vmm::fuzz {
namespace {

constexpr uint64_t kSmallRam = uint64_t{128} << 20;  // `hvmm run`'s default
constexpr uint64_t kLargeRam = uint64_t{5} << 30;    // RAM on both sides of the MMIO hole

// Bytes the loader must write next: a segment's file bytes at its physical address.
struct ExpectedWrite {
  Ipa at;
  std::span<const uint8_t> bytes;
};

// CheckingGuestMemory is guest RAM that stores nothing: it refuses any access outside RAM (so
// it is bounded like the real memory) and checks that the writes are exactly the expected
// bytes, in order; reads are refused, the loader has nothing to read.
class CheckingGuestMemory final : public GuestAccess {
 public:
  CheckingGuestMemory(const std::vector<RamRegion>& ram, std::vector<ExpectedWrite> expected)
      : ram_(ram), expected_(std::move(expected)) {}

  Result<void> read(Ipa ipa, std::span<uint8_t> out) override {
    note(fmt::format("the loader read {} bytes at {}", out.size(), ipa));
    return make_error(ErrorCode::kInvalidArgument, "no reads in this test");
  }
  Result<void> write(Ipa ipa, std::span<const uint8_t> data) override {
    if (data.empty()) {
      return Ok();
    }
    if (!inside_ram(ram_, IpaRange{ipa, data.size()})) {
      note(fmt::format("write of {} bytes at {} outside RAM after placement passed", data.size(),
                       ipa));
      return make_error(ErrorCode::kNotFound, "write at {} outside RAM", ipa);
    }
    while (!data.empty()) {
      while (next_ < expected_.size() && done_ == expected_[next_].bytes.size()) {
        ++next_;
        done_ = 0;
      }
      if (next_ == expected_.size()) {
        note(fmt::format("write at {} after every segment was written", ipa));
        return Ok();
      }
      const ExpectedWrite& want = expected_[next_];
      if (ipa != want.at + done_) {
        note(fmt::format("write at {}, expected {}", ipa, want.at + done_));
        return Ok();
      }
      const size_t n = std::min(data.size(), want.bytes.size() - done_);
      if (std::memcmp(data.data(), want.bytes.data() + done_, n) != 0) {
        note(fmt::format("bytes written at {} differ from the segment's file bytes", ipa));
      }
      done_ += n;
      ipa = ipa + n;
      data = data.subspan(n);
    }
    return Ok();
  }
  // What went wrong, or "" (including: some expected bytes were never written).
  std::string problem() const {
    if (!problem_.empty()) {
      return problem_;
    }
    size_t next = next_;
    size_t done = done_;
    while (next < expected_.size() && done == expected_[next].bytes.size()) {
      ++next;
      done = 0;
    }
    return next == expected_.size()
               ? ""
               : fmt::format("segment bytes at {} never written", expected_[next].at + done);
  }

 private:
  void note(std::string what) {
    if (problem_.empty()) {
      problem_ = std::move(what);
    }
  }

  const std::vector<RamRegion>& ram_;
  std::vector<ExpectedWrite> expected_;
  size_t next_ = 0;  // the expected write in progress
  size_t done_ = 0;  // its bytes already written
  std::string problem_;
};

// Whether `range` lies inside one region of `ram` (computed here, not by inside_ram()).
bool fits_one_region(const std::vector<RamRegion>& ram, IpaRange range) {
  return std::any_of(ram.begin(), ram.end(), [&](const RamRegion& region) {
    return range.start >= region.range.start && range.size <= region.range.size &&
           range.start.value() - region.range.start.value() <= region.range.size - range.size;
  });
}

// Check one accepted segment against its program header.
std::string check_segment(std::span<const uint8_t> image, const ElfLayout& layout,
                          const KernelSegment& segment) {
  if (segment.file_offset > image.size() || segment.file_size > image.size() - segment.file_offset)
    return fmt::format("segment {}: file bytes [{:#x}, +{:#x}) outside the {}-byte file",
                       segment.index, segment.file_offset, segment.file_size, image.size());
  if (segment.file_size > segment.range.size || segment.range.overflows() || segment.range.empty())
    return fmt::format("segment {}: accepted with file size {:#x} and range {}", segment.index,
                       segment.file_size, segment.range);
  if (segment.index >= layout.headers.size())
    return fmt::format("segment {}: no such program header", segment.index);
  const ProgramHeader& h = layout.headers[segment.index];
  if (h.type != PT_LOAD || h.paddr != segment.range.start.value() ||
      h.mem_size != segment.range.size || h.offset != segment.file_offset ||
      h.file_size != segment.file_size)
    return fmt::format("segment {}: does not match its program header", segment.index);
  return "";
}

// Check what parse_pvh_kernel accepted against the independent reading of the image.
std::string check_parsed(std::span<const uint8_t> image, const PvhKernel& kernel) {
  auto layout = read_layout(image);
  if (!layout)
    return "accepted an image whose ELF or program headers do not fit";
  if (layout->elf64 != kernel.elf64)
    return "accepted an image with the wrong ELF class";
  size_t loads = 0;
  for (const ProgramHeader& h : layout->headers)
    loads += h.type == PT_LOAD && h.mem_size > 0;
  if (kernel.segments.empty() || kernel.segments.size() != loads)
    return fmt::format("{} segments accepted of {} non-empty PT_LOAD headers",
                       kernel.segments.size(), loads);
  for (const KernelSegment& segment : kernel.segments) {
    std::string problem = check_segment(image, *layout, segment);
    if (!problem.empty())
      return problem;
  }
  auto note = find_pvh_note(image, *layout);
  if (!note)
    return "accepted without a complete PVH note";
  if (note->desc_size != 4 && note->desc_size != 8)
    return fmt::format("accepted a {}-byte PVH note descriptor", note->desc_size);
  if ((note->desc_value >> 32) != 0)
    return fmt::format("accepted an 8-byte PVH note descriptor {:#x} whose high half is not zero",
                       note->desc_value);
  if (kernel.entry != Ipa(note->desc_value))
    return fmt::format("entry {} is not the PVH note's {:#x}", kernel.entry, note->desc_value);
  const bool entry_loaded =
      std::any_of(kernel.segments.begin(), kernel.segments.end(), [&](const KernelSegment& s) {
        return s.range.contains(kernel.entry) && kernel.entry - s.range.start < s.file_size;
      });
  return entry_loaded ? ""
                      : fmt::format("entry {} outside every segment's file bytes", kernel.entry);
}

// Check a successful placement: RAM, boot data, no two segments sharing a byte.
std::string check_placed(const PvhKernel& kernel, const std::vector<RamRegion>& ram) {
  std::vector<IpaRange> ranges;
  for (const KernelSegment& segment : kernel.segments) {
    if (!fits_one_region(ram, segment.range))
      return fmt::format("segment {} at {} placed outside RAM", segment.index, segment.range);
    if (segment.range.overlaps(kBootData))
      return fmt::format("segment {} at {} placed over the boot data", segment.index,
                         segment.range);
    ranges.push_back(segment.range);
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const IpaRange& a, const IpaRange& b) { return a.start < b.start; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i - 1].overlaps(ranges[i]))
      return fmt::format("segments at {} and {} overlap and were both placed", ranges[i - 1],
                         ranges[i]);
  }
  return "";
}

// Load a placed kernel into checking memory of the same RAM layout.
std::string check_load(std::span<const uint8_t> image, const PvhKernel& kernel,
                       const std::vector<RamRegion>& ram) {
  std::vector<ExpectedWrite> expected;
  for (const KernelSegment& segment : kernel.segments)
    expected.push_back(
        {segment.range.start, image.subspan(segment.file_offset, segment.file_size)});
  CheckingGuestMemory memory(ram, std::move(expected));
  auto loaded = load_kernel(kernel, image, memory);
  if (!loaded)
    return "load of a placed kernel failed: " + loaded.error().message;
  return memory.problem();
}

// Place in one layout; when it fits, check the placement and the load. `placed` says whether
// it fit.
std::string check_layout(std::span<const uint8_t> image, const PvhKernel& kernel,
                         const std::vector<RamRegion>& ram, bool& placed) {
  auto placement = check_kernel_placement(kernel, ram, kBootData);
  placed = placement.ok();
  if (!placed)
    return placement.error().message.empty() ? "placement refused without a message" : "";
  std::string problem = check_placed(kernel, ram);
  return problem.empty() ? check_load(image, kernel, ram) : problem;
}

}  // namespace

std::string check_elf_input(std::span<const uint8_t> image) {
  static const std::vector<RamRegion> small_ram = ram_layout(kSmallRam);
  static const std::vector<RamRegion> large_ram = ram_layout(kLargeRam);
  auto kernel = parse_pvh_kernel(image);
  if (!kernel)
    return kernel.error().message.empty() ? "refused without a message" : "";
  std::string problem = check_parsed(image, *kernel);
  if (!problem.empty())
    return problem;
  bool fits_small = false;
  bool fits_large = false;
  problem = check_layout(image, *kernel, small_ram, fits_small);
  if (problem.empty())
    problem = check_layout(image, *kernel, large_ram, fits_large);
  if (problem.empty() && fits_small && !fits_large)
    problem = "placed in 128 MiB of RAM but refused in 5 GiB";
  return problem;
}

}  // namespace hvmm::vmm::fuzz
