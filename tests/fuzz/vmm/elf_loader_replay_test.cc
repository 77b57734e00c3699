// The ELF loader fuzz body run by the regular build (and its ASan+UBSan build): the seed corpus
// generated at build time, then deterministic mutations of it, must keep every property that
// elf_loader_check.h lists.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "elf_corpus.h"
#include "elf_image.h"
#include "elf_loader_check.h"
#include "hvmm/vmm/boot/boot_data.h"
#include "hvmm/vmm/boot/elf_loader.h"
#include "hvmm/vmm/memory/memory_layout.h"

namespace hvmm::vmm::fuzz {
namespace {

constexpr unsigned kMutations = 5000;

// One corpus file.
struct Input {
  std::string name;
  std::vector<uint8_t> bytes;
};

// Every file of the corpus directory, in name order.
std::vector<Input> read_corpus() {
  std::vector<Input> inputs;
  for (const auto& entry : std::filesystem::directory_iterator(HVMM_ELF_FUZZ_CORPUS)) {
    std::ifstream in(entry.path(), std::ios::binary);
    inputs.push_back({entry.path().filename().string(),
                      {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()}});
  }
  std::sort(inputs.begin(), inputs.end(),
            [](const Input& a, const Input& b) { return a.name < b.name; });
  return inputs;
}

// The corpus read once for all tests.
const std::vector<Input>& corpus() {
  static const std::vector<Input> inputs = read_corpus();
  return inputs;
}

// The input of that name (empty when absent).
std::vector<uint8_t> corpus_input(const std::string& name) {
  for (const Input& input : corpus()) {
    if (input.name == name) {
      return input.bytes;
    }
  }
  return {};
}

// The build generated a corpus with the test guests and their variants in it.
TEST(ElfLoaderFuzzReplay, CorpusHoldsTheTestGuestsAndTheirVariants) {
  EXPECT_GE(corpus().size(), 300u);
  EXPECT_FALSE(corpus_input("hello.elf.orig").empty());
  EXPECT_FALSE(corpus_input("hello32.elf.orig").empty());
  EXPECT_FALSE(corpus_input("hello.elf.load-duplicate").empty());
  EXPECT_FALSE(corpus_input("hello.elf.note-desc8-high-set").empty());
}

// The unmodified seeds parse and fit the default RAM, so the fuzz body reaches placement and
// loading from them.
TEST(ElfLoaderFuzzReplay, SeedsParseAndFit) {
  unsigned seeds = 0;
  for (const Input& input : corpus()) {
    if (!input.name.ends_with(".orig")) {
      continue;
    }
    ++seeds;
    auto kernel = parse_pvh_kernel(input.bytes);
    ASSERT_TRUE(kernel.ok()) << input.name << ": " << kernel.error().message;
    auto placed = check_kernel_placement(*kernel, ram_layout(uint64_t{128} << 20), kBootData);
    EXPECT_TRUE(placed.ok()) << input.name << ": " << placed.error().message;
  }
  EXPECT_GE(seeds, 10u);
}

// The structured variants do what their names say (read back with the independent reader).
TEST(ElfLoaderFuzzReplay, VariantsAreWhatTheirNamesSay) {
  auto original = read_layout(corpus_input("hello.elf.orig"));
  auto duplicated = read_layout(corpus_input("hello.elf.load-duplicate"));
  ASSERT_TRUE(original && duplicated);
  ASSERT_EQ(duplicated->headers.size(), original->headers.size() + 1);
  EXPECT_EQ(duplicated->headers.back().paddr, original->headers.front().paddr);
  const std::vector<uint8_t> high = corpus_input("hello.elf.note-desc8-high-set");
  auto note = find_pvh_note(high, *read_layout(high));
  ASSERT_TRUE(note.has_value());
  EXPECT_EQ(note->desc_size, 8u);
  EXPECT_NE(note->desc_value >> 32, 0u);
}

// Every corpus input keeps the loader's properties.
TEST(ElfLoaderFuzzReplay, CorpusKeepsTheLoaderProperties) {
  for (const Input& input : corpus()) {
    EXPECT_EQ(check_elf_input(input.bytes), "") << input.name;
  }
}

// Deterministic mutations of the corpus (fixed seed) keep the loader's properties.
TEST(ElfLoaderFuzzReplay, MutationsKeepTheLoaderProperties) {
  ASSERT_FALSE(corpus().empty());
  std::mt19937_64 random(20261201);
  for (unsigned i = 0; i < kMutations; ++i) {
    const Input& input = corpus()[random() % corpus().size()];
    const std::vector<uint8_t> mutated = mutate(input.bytes, random);
    const std::string problem = check_elf_input(mutated);
    EXPECT_EQ(problem, "") << "mutation " << i << " of " << input.name;
    if (!problem.empty()) {
      break;  // one report is enough; the rest would repeat it
    }
  }
}

}  // namespace
}  // namespace hvmm::vmm::fuzz
