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

// The codec a pool uses unless the policy names one. LZ4, from vmm_pool_bench (one run, the
// README's table): it stores pages 3.7x faster than zstd on the pattern mix (2419 against
// 662 MiB/s into a warm pool) and 1.8x on this process's own memory, and loads them 4x and
// 3.4x faster (0.57 against 2.35 us, 4.2 against 14 us per page): the refault path is what
// the guest waits on. zstd packs denser (20.4 against 10.3 page bytes per payload byte on
// the mix's text pages, 2.8 against 2.3 on real memory, and keeps 12% more of the real pages
// under the 3/4 threshold), so it stays selectable for a VM whose pool limit matters more
// than its refault latency.
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
