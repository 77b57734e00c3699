// Codec: the compressors the reclaim pool can store pages with.
//
// Both are measured on guest pages by tests/bench/vmm/pool_bench; the default is the one
// with the better throughput at a comparable ratio on that corpus (the README has the
// figures). The other stays selectable per VM (--reclaim codec=...).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace hvmm::vmm {

enum class Codec : uint8_t {
  kLz4,   // LZ4 block format, default acceleration
  kZstd,  // Zstandard, level 1
};

// The codec a pool uses unless the policy names one.
inline constexpr Codec kDefaultCodec = Codec::kLz4;

// "lz4" or "zstd", for messages, stats and the policy syntax.
inline std::string_view codec_name(Codec codec) {
  return codec == Codec::kZstd ? "zstd" : "lz4";
}

// The codec `name` names, or nothing for an unknown name.
inline std::optional<Codec> parse_codec(std::string_view name) {
  if (name == "lz4")
    return Codec::kLz4;
  if (name == "zstd")
    return Codec::kZstd;
  return std::nullopt;
}

}  // namespace hvmm::vmm
