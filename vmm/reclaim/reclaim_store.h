// ReclaimStore: where the contents of reclaimed guest pages live.
//
// The reclaim engine copies a cold page out (through the alias mapping) and hands it to the
// store before the page is punched out of the memfd; a refault (or a VMM access) loads it
// back, and the entry is erased once the page is resident again. The pool (pool/) is the
// store VMs run with: compressed entries in size classes, zero- and same-filled pages kept as
// their value, and optionally a swap file behind it for the coldest entries. Tests of the
// engine may use a plain in-memory fake.
//
// Every method is thread-safe: the reclaim thread stores, fault handler threads and VMM
// threads load and erase concurrently.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"

namespace hvmm::vmm {

// What store() did with a page.
enum class StoreOutcome : uint8_t {
  kCompressed,      // kept compressed (in memory; the swap file may take it later)
  kSameFilled,      // every 64-bit word equal (zero pages included): kept as that value
  kIncompressible,  // would not shrink below the threshold: not kept, the page stays resident
  kFull,            // the pool is at its limit and no swap file has room: not kept
};

// The store's figures (a snapshot).
struct ReclaimStoreStats {
  std::string_view codec;               // "lz4" / "zstd"
  uint64_t entries = 0;                 // pages held, of every kind
  uint64_t compressed_pages = 0;        // entries held compressed in memory
  uint64_t zero_pages = 0;              // entries that are zero pages
  uint64_t same_filled_pages = 0;       // entries that are same-filled, not zero
  uint64_t swapped_pages = 0;           // entries moved to the swap file
  uint64_t payload_bytes = 0;           // compressed bytes of the in-memory entries
  uint64_t pool_bytes = 0;              // memory the size classes hold (payload + waste)
  uint64_t limit_bytes = 0;             // the pool's cap on pool_bytes
  uint64_t swap_bytes = 0;              // bytes of the swap file in use
  uint64_t stores = 0;                  // store() calls
  uint64_t incompressible_rejects = 0;  // of them kIncompressible
  uint64_t full_rejects = 0;            // of them kFull
  uint64_t loads = 0;                   // load() calls that succeeded
  uint64_t load_errors = 0;             // load() calls that failed (corrupted, I/O)
  uint64_t swap_writes = 0;             // entries written to the swap file
  uint64_t swap_reads = 0;              // entries read back from it

  // Original bytes per compressed byte of the compressed in-memory entries (0: none).
  double compression_ratio() const {
    return payload_bytes == 0 ? 0.0
                              : static_cast<double>(compressed_pages * kPageSize) /
                                    static_cast<double>(payload_bytes);
  }
  // The share of pool_bytes that holds no payload (internal fragmentation and free slots).
  double fragmentation() const {
    return pool_bytes == 0
               ? 0.0
               : 1.0 - static_cast<double>(payload_bytes) / static_cast<double>(pool_bytes);
  }
};

class ReclaimStore {
 public:
  virtual ~ReclaimStore() = default;
  // Keep the contents of guest page `page` (page aligned), replacing any entry it had.
  // kIncompressible and kFull keep nothing (and drop an older entry of the page).
  virtual Result<StoreOutcome> store(Ipa page, std::span<const uint8_t, kPageSize> contents) = 0;
  // Copy the entry of `page` into `out`; the entry stays until erase(). No entry is
  // kNotFound; an entry that fails its check (corrupted) or cannot be read back from the swap
  // file is kDataLoss, naming the page: the caller fails the VM, never the host.
  virtual Result<void> load(Ipa page, std::span<uint8_t, kPageSize> out) = 0;
  // Forget the entry of `page` (none: nothing happens).
  virtual void erase(Ipa page) = 0;
  virtual bool contains(Ipa page) const = 0;
  virtual ReclaimStoreStats stats() const = 0;
};

}  // namespace hvmm::vmm
