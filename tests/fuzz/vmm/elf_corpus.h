// Seed corpus and deterministic mutations for the ELF loader fuzz target.
//
// From each real ELF (the test guests, the guest kernel) make_variants() derives structured
// variants aimed at one check of the loader each: truncations at every header boundary,
// header fields set to edge values, segments moved into the boot data, the MMIO hole, past
// the end of RAM or around the top of the address space, PVH notes with 2-, 8- and 12-byte
// descriptors, and extra PT_LOAD headers that overlap or follow the existing ones. mutate()
// is the replay test's small deterministic fuzzer.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace hvmm::vmm::fuzz {

// One corpus input.
struct CorpusEntry {
  std::string name;  // "<seed>.<variant>"
  std::vector<uint8_t> bytes;
};

// The loader-relevant prefix of `image` (elf_image.h's loadable_prefix) and its variants.
std::vector<CorpusEntry> make_variants(const std::string& seed_name,
                                       std::span<const uint8_t> image);

// A mutation of `image`: byte flips, a header field set to an edge value, a truncation, or two
// of these; the same `random` state gives the same result.
std::vector<uint8_t> mutate(std::span<const uint8_t> image, std::mt19937_64& random);

}  // namespace hvmm::vmm::fuzz
