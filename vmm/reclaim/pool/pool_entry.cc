// Encoding and checking the pool's entries (the format is in pool_entry.h).
#include "hvmm/vmm/reclaim/pool/pool_entry.h"

#include <xxhash.h>

#include <cstring>

#include "hvmm/vmm/reclaim/pool/page_codec.h"

namespace hvmm::vmm {
namespace {

// The codec byte of each codec (0 is never written, so a zeroed slot is not an entry).
constexpr uint8_t kLz4Tag = 1;
constexpr uint8_t kZstdTag = 2;

// Read a little-endian integer of type T at `at` (x86-64 and arm64 hosts are little-endian).
template <typename T>
T load_le(const uint8_t* at) {
  T value;
  std::memcpy(&value, at, sizeof(value));
  return value;
}

// Write a little-endian integer at `at`.
template <typename T>
void store_le(uint8_t* at, T value) {
  std::memcpy(at, &value, sizeof(value));
}

// The codec a tag names, or nothing.
std::optional<Codec> codec_of_tag(uint8_t tag) {
  if (tag == kLz4Tag)
    return Codec::kLz4;
  if (tag == kZstdTag)
    return Codec::kZstd;
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> same_fill_word(std::span<const uint8_t, kPageSize> page) {
  const uint64_t first = load_le<uint64_t>(page.data());
  for (size_t at = 8; at < kPageSize; at += 8) {
    if (load_le<uint64_t>(page.data() + at) != first) {
      return std::nullopt;
    }
  }
  return first;
}

void fill_page(std::span<uint8_t, kPageSize> out, uint64_t word) {
  for (size_t at = 0; at < kPageSize; at += 8) {
    store_le(out.data() + at, word);
  }
}

uint64_t page_checksum(std::span<const uint8_t, kPageSize> page) {
  return XXH3_64bits(page.data(), page.size());
}

size_t encode_entry(Codec codec, std::span<const uint8_t, kPageSize> page, std::span<uint8_t> out) {
  if (out.size() <= kEntryHeaderSize) {
    return 0;
  }
  const size_t room = std::min(out.size(), kMaxEntrySize) - kEntryHeaderSize;
  const size_t payload = compress_page(codec, page, out.subspan(kEntryHeaderSize, room));
  if (payload == 0) {
    return 0;
  }
  out[0] = codec == Codec::kZstd ? kZstdTag : kLz4Tag;
  out[1] = 0;
  store_le(out.data() + 2, static_cast<uint16_t>(payload));
  store_le(out.data() + 4, page_checksum(page));
  return kEntryHeaderSize + payload;
}

Result<void> decode_entry(std::span<const uint8_t> entry, std::span<uint8_t, kPageSize> out) {
  if (entry.size() < kEntryHeaderSize) {
    return make_error(ErrorCode::kDataLoss, "entry of {} bytes is shorter than its {}-byte header",
                      entry.size(), kEntryHeaderSize);
  }
  const std::optional<Codec> codec = codec_of_tag(entry[0]);
  if (!codec) {
    return make_error(ErrorCode::kDataLoss, "entry names unknown codec {}", entry[0]);
  }
  if (entry[1] != 0) {
    return make_error(ErrorCode::kDataLoss, "entry has unknown format flags {:#x}", entry[1]);
  }
  const size_t payload = load_le<uint16_t>(entry.data() + 2);
  if (payload != entry.size() - kEntryHeaderSize) {
    return make_error(ErrorCode::kDataLoss,
                      "entry's payload length {} {} the {} bytes after its header", payload,
                      payload > entry.size() - kEntryHeaderSize ? "goes beyond" : "falls short of",
                      entry.size() - kEntryHeaderSize);
  }
  const std::string failure = decompress_page(*codec, entry.subspan(kEntryHeaderSize), out);
  if (!failure.empty()) {
    return make_error(ErrorCode::kDataLoss, "entry's {}", failure);
  }
  const uint64_t expected = load_le<uint64_t>(entry.data() + 4);
  const uint64_t actual = page_checksum(out);
  if (actual != expected) {
    return make_error(ErrorCode::kDataLoss,
                      "entry's page fails its checksum (XXH3 {:#018x}, entry says {:#018x})",
                      actual, expected);
  }
  return Ok();
}

}  // namespace hvmm::vmm
