// Tests of the PVH ELF loader: one test per way a kernel image can be refused, plus the
// happy paths for ELF64 and ELF32 and a mutation test that no input crashes the parser.
#include "hvmm/vmm/boot/elf_loader.h"

#include <gtest/gtest.h>

#include <random>

#include "hvmm/vmm/boot/boot_data.h"
#include "test_support.h"

namespace hvmm::vmm {
namespace {

using testing::FakeGuestMemory;
using testing::PvhElfBuilder;

constexpr uint64_t kRam = 16 << 20;

// The message of a failed parse, or "" when it parsed.
std::string parse_error(const std::vector<uint8_t>& image) {
  auto kernel = parse_pvh_kernel(image);
  return kernel ? "" : kernel.error().message;
}

// The message of a failed placement check of an otherwise valid image.
std::string placement_error(const PvhElfBuilder& builder) {
  auto image = builder.build();
  auto kernel = parse_pvh_kernel(image);
  EXPECT_TRUE(kernel.ok()) << kernel.error().message;
  auto placed = check_kernel_placement(*kernel, ram_layout(kRam), kBootData);
  return placed ? "" : placed.error().message;
}

// A well-formed ELF64 PVH kernel parses: entry from the note, one segment with its sizes.
TEST(ElfLoader, ParsesElf64PvhKernel) {
  PvhElfBuilder builder;
  builder.entry = 0x100002;
  auto kernel = parse_pvh_kernel(builder.build());
  ASSERT_TRUE(kernel.ok()) << kernel.error().message;
  EXPECT_TRUE(kernel->elf64);
  EXPECT_EQ(kernel->entry, Ipa(0x100002));
  ASSERT_EQ(kernel->segments.size(), 1u);
  EXPECT_EQ(kernel->segments[0].range, (IpaRange{Ipa(0x100000), 0x2000}));
  EXPECT_EQ(kernel->segments[0].file_size, 4u);
}

// An i386 ELF32 PVH kernel parses too.
TEST(ElfLoader, ParsesElf32PvhKernel) {
  PvhElfBuilder builder;
  builder.elf64 = false;
  builder.machine = EM_386;
  auto kernel = parse_pvh_kernel(builder.build());
  ASSERT_TRUE(kernel.ok()) << kernel.error().message;
  EXPECT_FALSE(kernel->elf64);
  EXPECT_EQ(kernel->entry, Ipa(0x100000));
}

// Text is not an ELF file.
TEST(ElfLoader, RejectsNonElf) {
  std::string text = "#!/bin/sh\necho this is not a kernel\n";
  EXPECT_NE(parse_error(std::vector<uint8_t>(text.begin(), text.end())).find("not an ELF"),
            std::string::npos);
}

// An empty file is not an ELF file either.
TEST(ElfLoader, RejectsEmptyFile) {
  EXPECT_NE(parse_error({}).find("not an ELF"), std::string::npos);
}

// The magic alone, or a header cut short, is a truncated header.
TEST(ElfLoader, RejectsTruncatedElfHeader) {
  auto image = PvhElfBuilder().build();
  EXPECT_NE(parse_error({image.begin(), image.begin() + 8}).find("truncated ELF header"),
            std::string::npos);
  EXPECT_NE(parse_error({image.begin(), image.begin() + 40}).find("truncated ELF header"),
            std::string::npos);
}

// An AArch64 ELF64 is refused as the wrong machine.
TEST(ElfLoader, RejectsWrongMachine) {
  PvhElfBuilder builder;
  builder.machine = EM_AARCH64;
  EXPECT_NE(parse_error(builder.build()).find("ELF machine 183 is not EM_X86_64"),
            std::string::npos);
}

// An ELF32 claiming x86-64 is refused: i386 images must say EM_386.
TEST(ElfLoader, RejectsElf32WithX86_64Machine) {
  PvhElfBuilder builder;
  builder.elf64 = false;
  builder.machine = EM_X86_64;
  EXPECT_NE(parse_error(builder.build()).find("is not EM_386"), std::string::npos);
}

// Big-endian images cannot be x86.
TEST(ElfLoader, RejectsBigEndian) {
  PvhElfBuilder builder;
  builder.data_encoding = ELFDATA2MSB;
  EXPECT_NE(parse_error(builder.build()).find("little-endian"), std::string::npos);
}

// A shared object (ET_DYN) is not a kernel image.
TEST(ElfLoader, RejectsNonExecutable) {
  PvhElfBuilder builder;
  builder.type = ET_DYN;
  EXPECT_NE(parse_error(builder.build()).find("not an executable"), std::string::npos);
}

// Program headers that run past the end of the file are refused.
TEST(ElfLoader, RejectsTruncatedProgramHeaders) {
  auto image = PvhElfBuilder().build();
  image.resize(sizeof(Elf64_Ehdr) + 10);
  EXPECT_NE(parse_error(image).find("program headers"), std::string::npos);
}

// A segment whose file bytes lie beyond the end of the file is refused, naming it.
TEST(ElfLoader, RejectsSegmentDataBeyondFile) {
  auto image = PvhElfBuilder().build();
  image.resize(image.size() - 2);
  EXPECT_NE(parse_error(image).find("segment 1 file data"), std::string::npos);
}

// A segment with more file bytes than memory bytes is malformed.
TEST(ElfLoader, RejectsFileSizeLargerThanMemorySize) {
  PvhElfBuilder builder;
  builder.segments[0].mem_size = 2;
  EXPECT_NE(parse_error(builder.build()).find("file size 0x4 > memory size 0x2"),
            std::string::npos);
}

// An image without any PT_LOAD has nothing to boot.
TEST(ElfLoader, RejectsNoLoadSegment) {
  PvhElfBuilder builder;
  builder.segments.clear();
  EXPECT_NE(parse_error(builder.build()).find("no PT_LOAD"), std::string::npos);
}

// Without the PVH note the image is not a PVH kernel.
TEST(ElfLoader, RejectsMissingPvhNote) {
  PvhElfBuilder builder;
  builder.with_note = false;
  EXPECT_NE(parse_error(builder.build()).find("no PVH entry note"), std::string::npos);
}

// A Xen note of another type (e.g. XEN_ELFNOTE_ENTRY, 1) is not the PVH entry.
TEST(ElfLoader, RejectsOtherXenNoteType) {
  PvhElfBuilder builder;
  builder.note_type = 1;
  EXPECT_NE(parse_error(builder.build()).find("no PVH entry note"), std::string::npos);
}

// Two PT_LOAD segments sharing guest-physical bytes are refused, naming both and both ranges:
// the later one would overwrite the first.
TEST(ElfLoader, RejectsOverlappingSegments) {
  PvhElfBuilder builder;
  builder.segments.push_back({0x101000, {1, 2, 3}, 0x2000});
  EXPECT_NE(parse_error(builder.build())
                .find("PT_LOAD segments 1 at [0x100000, 0x102000) and 2 at [0x101000, 0x103000) "
                      "overlap in guest-physical memory"),
            std::string::npos)
      << parse_error(builder.build());
}

// The overlap is found whatever the program-header order, and among many segments.
TEST(ElfLoader, RejectsOverlapAmongManySegments) {
  PvhElfBuilder builder;
  for (uint64_t i = 0; i < 8; ++i) {
    builder.segments.push_back({0x400000 + i * 0x10000, {1}, 0x1000});
  }
  builder.segments.push_back({0x430800, {1}, 0x100});  // inside segment 5's page
  std::string error = parse_error(builder.build());
  EXPECT_NE(error.find("segments 5 at [0x430000, 0x431000) and 10 at [0x430800, 0x430900)"),
            std::string::npos)
      << error;
}

// Segments that only touch (one ends where the next starts) are fine.
TEST(ElfLoader, AcceptsAdjacentSegments) {
  PvhElfBuilder builder;
  builder.segments.push_back({0x102000, {1}, 0x1000});
  EXPECT_EQ(parse_error(builder.build()), "");
}

// An 8-byte PVH descriptor (Linux's `.quad`) with a zero high half gives the entry.
TEST(ElfLoader, AcceptsEightByteNoteDescriptor) {
  PvhElfBuilder builder;
  builder.note_descriptor64 = 0x100001;
  auto kernel = parse_pvh_kernel(builder.build());
  ASSERT_TRUE(kernel.ok()) << kernel.error().message;
  EXPECT_EQ(kernel->entry, Ipa(0x100001));
}

// An 8-byte descriptor whose high 32 bits are set is refused, not truncated to its low half.
TEST(ElfLoader, RejectsEightByteNoteWithHighBits) {
  PvhElfBuilder builder;
  builder.note_descriptor64 = 0x100000000100000;
  EXPECT_NE(parse_error(builder.build())
                .find("PVH entry note's 8-byte descriptor 0x100000000100000 does not fit in 32 "
                      "bits"),
            std::string::npos)
      << parse_error(builder.build());
}

// A descriptor of any size but 4 or 8 is refused.
TEST(ElfLoader, RejectsOddNoteDescriptorSize) {
  auto image = PvhElfBuilder().build();
  // The note follows the headers: namesz at +0, descsz at +4 of the PT_NOTE's data.
  size_t note = sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr);
  uint32_t two = 2;
  std::memcpy(image.data() + note + 4, &two, 4);
  EXPECT_NE(parse_error(image).find("PVH entry note has a 2-byte descriptor (need 4 or 8)"),
            std::string::npos)
      << parse_error(image);
}

// A PVH entry outside the loaded bytes would run garbage.
TEST(ElfLoader, RejectsEntryOutsideSegments) {
  PvhElfBuilder builder;
  builder.entry = 0x200000;
  EXPECT_NE(parse_error(builder.build()).find("PVH entry 0x200000 is not inside"),
            std::string::npos);
}

// A segment past the end of RAM is refused, naming the segment and its range.
TEST(ElfLoader, RejectsSegmentOutsideRam) {
  PvhElfBuilder builder;
  builder.segments.push_back({kRam - 0x1000, {1, 2, 3}, 0x2000});
  EXPECT_NE(
      placement_error(builder).find("segment 2 at [0xfff000, 0x1001000) is outside guest RAM"),
      std::string::npos);
}

// A segment in the MMIO hole is outside RAM even on a large VM.
TEST(ElfLoader, RejectsSegmentInMmioHole) {
  PvhElfBuilder builder;
  builder.segments.push_back({kMmioHoleStart, {1}, 0x1000});
  auto image = builder.build();
  auto kernel = parse_pvh_kernel(image);
  ASSERT_TRUE(kernel.ok());
  auto placed = check_kernel_placement(*kernel, ram_layout(uint64_t{5} << 30), kBootData);
  ASSERT_FALSE(placed.ok());
  EXPECT_NE(placed.error().message.find("outside guest RAM"), std::string::npos);
}

// A segment over the start info page would be overwritten by the boot data.
TEST(ElfLoader, RejectsSegmentOverlappingBootData) {
  PvhElfBuilder builder;
  builder.segments.push_back({0x6000, {1, 2}, 0x100});
  EXPECT_NE(placement_error(builder).find("overlaps the boot data at [0x0, 0x8000)"),
            std::string::npos);
}

// Loading copies the file bytes to the physical address and leaves the zero-fill alone.
TEST(ElfLoader, LoadsSegmentBytes) {
  PvhElfBuilder builder;
  builder.segments.push_back({0x300000, {9, 8, 7}, 0x10});
  auto image = builder.build();
  auto kernel = parse_pvh_kernel(image);
  ASSERT_TRUE(kernel.ok());
  FakeGuestMemory memory(kRam);
  ASSERT_TRUE(load_kernel(*kernel, image, memory).ok());
  EXPECT_EQ(memory.load<uint32_t>(0x100000), 0x90fdebf4u);
  EXPECT_EQ(memory.bytes[0x300000], 9);
  EXPECT_EQ(memory.bytes[0x300002], 7);
  EXPECT_EQ(memory.bytes[0x300003], 0);
}

// Loading into memory that cannot hold a segment fails and names the segment.
TEST(ElfLoader, LoadFailureNamesSegment) {
  PvhElfBuilder builder;
  auto image = builder.build();
  auto kernel = parse_pvh_kernel(image);
  ASSERT_TRUE(kernel.ok());
  FakeGuestMemory small(0x1000);
  auto loaded = load_kernel(*kernel, image, small);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find("loading kernel segment 1"), std::string::npos);
}

// Random byte mutations and truncations of a valid image never crash the parser, and any
// image it accepts has every segment's file bytes inside the file.
TEST(ElfLoader, SurvivesRandomMutations) {
  std::mt19937_64 random(12345);
  PvhElfBuilder builder;
  builder.segments.push_back({0x200000, {1, 2, 3, 4, 5, 6}, 0x100});
  const auto valid = builder.build();
  for (int round = 0; round < 20000; ++round) {
    auto image = valid;
    int flips = 1 + static_cast<int>(random() % 4);
    for (int i = 0; i < flips; ++i) {
      image[random() % image.size()] = static_cast<uint8_t>(random());
    }
    if (random() % 8 == 0) {
      image.resize(random() % image.size());
    }
    auto kernel = parse_pvh_kernel(image);
    if (!kernel) {
      EXPECT_FALSE(kernel.error().message.empty());
      continue;
    }
    for (const KernelSegment& segment : kernel->segments) {
      EXPECT_LE(segment.file_offset + segment.file_size, image.size());
    }
  }
}

}  // namespace
}  // namespace hvmm::vmm
