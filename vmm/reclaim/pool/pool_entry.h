// The pool's entry format and its one decoder.
//
// A compressed entry is a 12-byte header and the codec's payload, little-endian:
//   byte 0      codec: 1 = LZ4 block, 2 = zstd frame (0 and anything else: not an entry)
//   byte 1      format flags: 0 (anything else is rejected, room for later formats)
//   bytes 2-3   payload length in bytes (the entry is exactly header + payload)
//   bytes 4-11  XXH3-64 of the original 4 KiB page
// Same-filled pages (every 64-bit word equal, zero pages included) have no entry: the pool
// keeps their word. Entries live in the pool's size classes and, copied as they are, in the
// swap file; whatever comes back from either goes through decode_entry() before the guest
// sees it, so a corrupted entry is a kDataLoss error, never a wrong page or a host crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/reclaim/pool/codec.h"

namespace hvmm::vmm {

inline constexpr size_t kEntryHeaderSize = 12;
// The largest entry the format can describe (a payload length is 16 bits).
inline constexpr size_t kMaxEntrySize = kEntryHeaderSize + 0xffff;
// Room for the entry of any page with either codec (both bound a page's output by 4096 plus
// under 100 bytes), so encode_entry() into it never fails.
inline constexpr size_t kEntryScratchSize = kEntryHeaderSize + kPageSize + 256;

// The word every 64-bit word of `page` equals, or nothing when they differ.
std::optional<uint64_t> same_fill_word(std::span<const uint8_t, kPageSize> page);

// Fill `out` with `word` in every 64-bit word.
void fill_page(std::span<uint8_t, kPageSize> out, uint64_t word);

// The checksum an entry carries: XXH3-64 of the page.
uint64_t page_checksum(std::span<const uint8_t, kPageSize> page);

// Encode `page` with `codec` into `out` (at most out.size() bytes, header included); the
// entry's length, or 0 when it would not fit. With less than kEntryScratchSize bytes the
// codecs may give up on an entry a few bytes short of out.size() (LZ4 bounds its output
// conservatively), so the pool encodes into a full scratch buffer and compares the length.
size_t encode_entry(Codec codec, std::span<const uint8_t, kPageSize> page, std::span<uint8_t> out);

// Decode `entry` (exactly one entry, no trailing bytes) into `out`. kDataLoss naming what is
// wrong: a short header, an unknown codec or flags, a payload length beyond (or short of) the
// entry, a payload that does not decompress to exactly 4096 bytes, a checksum mismatch. Never
// reads outside `entry` nor writes outside `out` (which holds garbage after a failure).
Result<void> decode_entry(std::span<const uint8_t> entry, std::span<uint8_t, kPageSize> out);

}  // namespace hvmm::vmm
