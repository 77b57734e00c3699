// The pool's compressors on one 4 KiB page: LZ4 block format and zstd level 1.
//
// Both run on per-thread state (zstd's contexts are not thread-safe; LZ4's default entry
// points keep their state on the stack), so any thread may call these at any time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "hvmm/base/address.h"
#include "hvmm/vmm/reclaim/pool/codec.h"

namespace hvmm::vmm {

// The zstd level the pool compresses with.
inline constexpr int kZstdLevel = 1;

// Compress `page` with `codec` into `out`; the payload's length, or 0 when it does not fit
// in `out` (the page is not worth storing at that size).
size_t compress_page(Codec codec, std::span<const uint8_t, kPageSize> page, std::span<uint8_t> out);

// Decompress `payload` into `out`. "" when it decoded to exactly one page, else why not (for
// a kDataLoss message); never reads outside `payload` nor writes outside `out`.
std::string decompress_page(Codec codec, std::span<const uint8_t> payload,
                            std::span<uint8_t, kPageSize> out);

}  // namespace hvmm::vmm
