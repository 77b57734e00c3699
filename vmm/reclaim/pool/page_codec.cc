// LZ4 and zstd on single pages, with the zstd contexts kept per thread.
#include "hvmm/vmm/reclaim/pool/page_codec.h"

#include <lz4.h>
#include <zstd.h>

#include <fmt/format.h>

#include <limits>
#include <memory>

namespace hvmm::vmm {
namespace {

// RAII deleters of zstd's contexts.
struct CCtxDeleter {
  void operator()(ZSTD_CCtx* context) const { ZSTD_freeCCtx(context); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* context) const { ZSTD_freeDCtx(context); }
};

// This thread's compression context (made on first use, freed when the thread ends).
ZSTD_CCtx* thread_cctx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxDeleter> context(ZSTD_createCCtx());
  return context.get();
}

// This thread's decompression context.
ZSTD_DCtx* thread_dctx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> context(ZSTD_createDCtx());
  return context.get();
}

// LZ4 takes int sizes: clamp a capacity (an entry is never near 2 GiB).
int lz4_size(size_t size) {
  return static_cast<int>(std::min<size_t>(size, std::numeric_limits<int>::max()));
}

}  // namespace

size_t compress_page(Codec codec, std::span<const uint8_t, kPageSize> page,
                     std::span<uint8_t> out) {
  const char* source = reinterpret_cast<const char*>(page.data());
  if (codec == Codec::kLz4) {
    // 0 when the block does not fit in `out`: LZ4 stops early, which is also cheaper.
    const int n = LZ4_compress_default(source, reinterpret_cast<char*>(out.data()),
                                       static_cast<int>(kPageSize), lz4_size(out.size()));
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  ZSTD_CCtx* context = thread_cctx();
  if (context == nullptr) {
    return 0;
  }
  const size_t n =
      ZSTD_compressCCtx(context, out.data(), out.size(), source, kPageSize, kZstdLevel);
  return ZSTD_isError(n) ? 0 : n;
}

std::string decompress_page(Codec codec, std::span<const uint8_t> payload,
                            std::span<uint8_t, kPageSize> out) {
  if (codec == Codec::kLz4) {
    const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(payload.data()),
                                      reinterpret_cast<char*>(out.data()), lz4_size(payload.size()),
                                      static_cast<int>(kPageSize));
    if (n < 0) {
      return "lz4 payload is malformed";
    }
    return n == static_cast<int>(kPageSize)
               ? std::string()
               : fmt::format("lz4 payload decompressed to {} bytes, not {}", n, kPageSize);
  }
  ZSTD_DCtx* context = thread_dctx();
  if (context == nullptr) {
    return "no zstd decompression context (out of memory)";
  }
  const size_t n =
      ZSTD_decompressDCtx(context, out.data(), out.size(), payload.data(), payload.size());
  if (ZSTD_isError(n)) {
    return fmt::format("zstd payload is malformed ({})", ZSTD_getErrorName(n));
  }
  return n == kPageSize
             ? std::string()
             : fmt::format("zstd payload decompressed to {} bytes, not {}", n, kPageSize);
}

}  // namespace hvmm::vmm
