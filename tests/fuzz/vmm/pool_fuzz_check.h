// Body of the pool decoder's fuzz target (vmm/reclaim/pool/pool_entry.h).
//
// check_pool_entry_input: the first byte picks the mode.
// - even: the rest is an entry as it could come back from a slot or the swap file; decoding
//   it must succeed (and the page then has the checksum the entry names) or fail kDataLoss;
// - odd: a valid entry is built from a seed page (byte 1: codec, and a text page of the
//   pattern mix or a half-random page; bytes 2-3: which page), then the rest corrupts it:
//   each 3-byte group XORs byte (u16 position mod length) with a value, and a final byte
//   left over resizes it (cut or extended by that many bytes). Decoding must yield the seed
//   page or fail with kDataLoss.
// Both decode from a heap copy of exactly the entry's size into a heap page, so a read or
// write out of bounds is an AddressSanitizer report.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace hvmm::vmm::fuzz {

// Run one input; "" when every property held, else what went wrong.
std::string check_pool_entry_input(std::span<const uint8_t> input);

}  // namespace hvmm::vmm::fuzz
