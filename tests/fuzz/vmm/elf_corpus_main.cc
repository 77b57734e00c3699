// Write the ELF loader fuzz target's seed corpus: `vmm_elf_fuzz_corpus DIR ELF...` replaces
// DIR with every variant (elf_corpus.h) of each ELF, one file per variant, named
// "<ELF file name>.<variant>". Run at build time on the test guests and the guest kernel.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "elf_corpus.h"

namespace {

// The whole file, or false when it cannot be read.
bool read_whole(const std::filesystem::path& path, std::vector<uint8_t>& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return false;
  }
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

// Write one corpus file, or false.
bool write_whole(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

}  // namespace

// Parse the arguments, then write every variant of every input.
int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR ELF...\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::error_code error;
  std::filesystem::remove_all(dir, error);
  std::filesystem::create_directories(dir, error);
  if (error) {
    std::fprintf(stderr, "cannot create %s: %s\n", argv[1], error.message().c_str());
    return 1;
  }
  size_t written = 0;
  for (int i = 2; i < argc; ++i) {
    const std::filesystem::path input = argv[i];
    std::vector<uint8_t> image;
    if (!read_whole(input, image)) {
      std::fprintf(stderr, "cannot read %s\n", argv[i]);
      return 1;
    }
    for (const auto& entry : hvmm::vmm::fuzz::make_variants(input.filename().string(), image)) {
      if (!write_whole(dir / entry.name, entry.bytes)) {
        std::fprintf(stderr, "cannot write %s\n", (dir / entry.name).c_str());
        return 1;
      }
      ++written;
    }
  }
  std::printf("ELF fuzz corpus: %zu inputs from %d ELF files in %s\n", written, argc - 2, argv[1]);
  return 0;
}
