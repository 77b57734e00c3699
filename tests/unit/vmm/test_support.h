// Helpers shared by the vmm unit tests: an in-memory GuestAccess and a PVH ELF builder.
#pragma once

#include <elf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "hvmm/vmm/memory/guest_access.h"

namespace hvmm::vmm::testing {

// Run `body` in a forked child that SIGALRM kills after `seconds`, so a call that would hang
// (an open() of a FIFO) fails the test instead of stalling it. Returns the child's exit code,
// or -1 when it was killed (timed out). `body` returns the code; it must not use gtest.
template <typename Body>
int run_with_timeout(Body body, unsigned seconds = 5) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(seconds);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// FakeGuestMemory is guest RAM [0, size) as a byte vector; out-of-range accesses fail.
class FakeGuestMemory final : public GuestAccess {
 public:
  explicit FakeGuestMemory(uint64_t size) : bytes(size, 0) {}

  Result<void> read(Ipa ipa, std::span<uint8_t> out) override {
    if (!fits(ipa, out.size())) {
      return make_error(ErrorCode::kNotFound, "fake read at {} out of range", ipa);
    }
    if (!out.empty()) {
      std::memcpy(out.data(), bytes.data() + ipa.value(), out.size());
    }
    return Ok();
  }
  Result<void> write(Ipa ipa, std::span<const uint8_t> data) override {
    if (!fits(ipa, data.size())) {
      return make_error(ErrorCode::kNotFound, "fake write at {} out of range", ipa);
    }
    if (!data.empty()) {
      std::memcpy(bytes.data() + ipa.value(), data.data(), data.size());
    }
    return Ok();
  }
  // Little-endian load of a T at `address`.
  template <typename T>
  T load(uint64_t address) const {
    T value;
    std::memcpy(&value, bytes.data() + address, sizeof(T));
    return value;
  }

  std::vector<uint8_t> bytes;

 private:
  bool fits(Ipa ipa, uint64_t size) const {
    return ipa.value() <= bytes.size() && size <= bytes.size() - ipa.value();
  }
};

// One PT_LOAD of a built image.
struct TestSegment {
  uint64_t paddr;
  std::vector<uint8_t> data;
  uint64_t mem_size;
};

// PvhElfBuilder makes ELF images with chosen headers, segments and notes, so each loader
// rejection can be produced on purpose. Defaults: a valid ELF64 x86-64 PVH kernel at 1 MiB.
struct PvhElfBuilder {
  bool elf64 = true;
  uint16_t machine = EM_X86_64;
  uint16_t type = ET_EXEC;
  uint8_t data_encoding = ELFDATA2LSB;
  bool with_note = true;
  uint32_t note_type = 18;
  uint32_t entry = 0x100000;
  // When set, the PVH note carries this 8-byte descriptor instead of the 4-byte entry.
  std::optional<uint64_t> note_descriptor64;
  std::vector<TestSegment> segments{{0x100000, {0xf4, 0xeb, 0xfd, 0x90}, 0x2000}};

  // Serialize the image: header, program headers, note, segment data.
  std::vector<uint8_t> build() const {
    return elf64 ? build_as<Elf64_Ehdr, Elf64_Phdr>() : build_as<Elf32_Ehdr, Elf32_Phdr>();
  }

 private:
  template <typename Ehdr, typename Phdr>
  std::vector<uint8_t> build_as() const {
    size_t phnum = segments.size() + (with_note ? 1 : 0);
    size_t note_offset = sizeof(Ehdr) + phnum * sizeof(Phdr);
    size_t note_size = note_descriptor64 ? 24 : 20;
    size_t data_offset = note_offset + note_size;
    std::vector<uint8_t> image(data_offset, 0);
    Ehdr header{};
    std::memcpy(header.e_ident, ELFMAG, SELFMAG);
    header.e_ident[EI_CLASS] = elf64 ? ELFCLASS64 : ELFCLASS32;
    header.e_ident[EI_DATA] = data_encoding;
    header.e_ident[EI_VERSION] = EV_CURRENT;
    header.e_type = type;
    header.e_machine = machine;
    header.e_version = EV_CURRENT;
    header.e_entry = entry;
    header.e_phoff = sizeof(Ehdr);
    header.e_ehsize = sizeof(Ehdr);
    header.e_phentsize = sizeof(Phdr);
    header.e_phnum = static_cast<uint16_t>(phnum);
    std::memcpy(image.data(), &header, sizeof(header));
    size_t index = 0;
    auto put_phdr = [&](const Phdr& phdr) {
      std::memcpy(image.data() + sizeof(Ehdr) + index++ * sizeof(Phdr), &phdr, sizeof(phdr));
    };
    if (with_note) {
      Phdr note{};
      note.p_type = PT_NOTE;
      note.p_offset = note_offset;
      note.p_filesz = note_size;
      put_phdr(note);
      uint32_t words[6] = {4, note_descriptor64 ? 8u : 4u, note_type, 0, entry, 0};
      std::memcpy(&words[3], "Xen", 4);
      if (note_descriptor64) {
        std::memcpy(&words[4], &*note_descriptor64, 8);
      }
      std::memcpy(image.data() + note_offset, words, note_size);
    }
    for (const TestSegment& segment : segments) {
      Phdr load{};
      load.p_type = PT_LOAD;
      load.p_offset = image.size();
      load.p_paddr = segment.paddr;
      load.p_vaddr = segment.paddr;
      load.p_filesz = segment.data.size();
      load.p_memsz = segment.mem_size;
      load.p_flags = PF_R | PF_W | PF_X;
      put_phdr(load);
      image.insert(image.end(), segment.data.begin(), segment.data.end());
    }
    return image;
  }
};

}  // namespace hvmm::vmm::testing
