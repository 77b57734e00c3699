// CompressedPool: the ReclaimStore VMs run with.
//
// A page is kept as its word when it is same-filled (zero pages included), else compressed
// (codec, entry format: pool_entry.h) into a slot of a size class (size_classes.h) of memory
// spans; an entry larger than keep_threshold of a page is not kept (kIncompressible). The
// spans' bytes (pool_bytes) stay within limit_bytes: a store that needs a new span beyond it
// moves the oldest in-memory entries (in store order, the coldest) to the swap file until it
// fits, or without a swap file returns kFull. An entry stays where it is until erase() or a
// new store() of its page: load() copies it out (a swapped entry is read back, not moved).
//
// Thread-safety: one mutex guards the index and the spans. store() checks and compresses
// the page before taking it (in a per-thread scratch buffer) and holds it only to place the
// entry (and to write evicted entries to the swap file); load() copies the entry out under
// it (reading it back from the swap file if it is there) and decompresses and checks it
// after releasing it.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "hvmm/vmm/host/unique_fd.h"
#include "hvmm/vmm/reclaim/pool/codec.h"
#include "hvmm/vmm/reclaim/pool/size_classes.h"
#include "hvmm/vmm/reclaim/pool/slot_arena.h"
#include "hvmm/vmm/reclaim/pool/swap_file.h"
#include "hvmm/vmm/reclaim/reclaim_store.h"

namespace hvmm::vmm {

struct PoolConfig {
  Codec codec = kDefaultCodec;
  uint64_t limit_bytes = 0;      // cap on pool_bytes; 0: no cap
  double keep_threshold = 0.75;  // entries above this share of a page are not kept (0, 1]
  std::optional<SwapFile> swap;  // where the coldest entries go at the limit
};

// The Backing of the in-memory arena: anonymous private mappings, one per span.
struct MemorySpans {
  using Storage = Mapping;
  Result<Mapping> acquire(uint64_t bytes);
  void release(Mapping&& span, uint64_t bytes);
};

class CompressedPool final : public ReclaimStore {
  struct Key {};  // only create() makes pools: it checks the config first

 public:
  // A pool for `config`; refuses a keep_threshold outside (0, 1] or that keeps under 64 bytes.
  static Result<std::unique_ptr<CompressedPool>> create(PoolConfig config);
  CompressedPool(PoolConfig config, Key key);
  ~CompressedPool() override;

  Result<StoreOutcome> store(Ipa page, std::span<const uint8_t, kPageSize> contents) override;
  Result<void> load(Ipa page, std::span<uint8_t, kPageSize> out) override;
  void erase(Ipa page) override;
  bool contains(Ipa page) const override;
  ReclaimStoreStats stats() const override;

  // The classes the pool's spans are carved into (and the swap file's extents).
  const SizeClassTable& size_classes() const { return classes_; }
  // The largest entry kept: keep_threshold of a page, in bytes.
  uint32_t max_entry() const { return classes_.max_entry(); }
  // The swap file, if the pool has one (for tests and stats).
  const SwapFile* swap_file() const { return swap_ ? &*swap_ : nullptr; }

 private:
  using Locked = std::unique_lock<std::mutex>;
  enum class Where : uint8_t { kSameFilled, kMemory, kSwap };
  // One page's entry: its word (same-filled), or its slot and length, and for in-memory
  // entries its place in the store order.
  struct Entry {
    Where where = Where::kSameFilled;
    uint64_t word = 0;
    SlotRef slot;
    uint32_t length = 0;
    std::list<uint64_t>::iterator age;
  };

  // Forget the entry of page number `page` (if any), freeing its slot.
  void drop(const Locked& locked, uint64_t page);
  // A slot for an entry of `size_class`, within the limit (evicting to swap as needed);
  // nothing when the pool is full.
  Result<std::optional<SlotRef>> place(const Locked& locked, uint16_t size_class);
  // Move the oldest in-memory entry to the swap file.
  Result<void> evict_oldest(const Locked& locked);
  // The bytes of an in-memory slot.
  uint8_t* memory_slot(const Locked& locked, SlotRef slot);
  // Copy the entry `entry` of page `page` into `out` (reading the swap file if it is there).
  Result<void> copy_entry(const Locked& locked, Ipa page, const Entry& entry,
                          std::span<uint8_t> out);

  const Codec codec_;
  const uint64_t limit_bytes_;
  const SizeClassTable classes_;
  std::optional<SwapFile> swap_;
  MemorySpans memory_backing_;

  mutable std::mutex mutex_;
  SlotArena<MemorySpans> memory_;
  std::optional<SlotArena<SwapFile>> swapped_;
  std::unordered_map<uint64_t, Entry> index_;  // page number -> entry
  std::list<uint64_t> order_;                  // in-memory entries' pages, oldest first
  ReclaimStoreStats counts_;                   // every figure but loads and load_errors
  std::atomic<uint64_t> loads_{0};
  std::atomic<uint64_t> load_errors_{0};
};

}  // namespace hvmm::vmm
