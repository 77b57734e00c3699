// The compressed pool: index, size-class spans, limit and swap file.
#include "hvmm/vmm/reclaim/pool/compressed_pool.h"

#include <sys/mman.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "hvmm/base/format.h"
#include "hvmm/vmm/reclaim/pool/pool_entry.h"

namespace hvmm::vmm {
namespace {

// The smallest share of a page worth configuring as the largest entry.
constexpr uint32_t kMinKeptEntry = 64;

// A per-thread buffer for one entry: store() compresses into it, load() copies into it.
std::span<uint8_t, kEntryScratchSize> entry_buffer() {
  thread_local std::array<uint8_t, kEntryScratchSize> buffer;
  return buffer;
}

}  // namespace

Result<Mapping> MemorySpans::acquire(uint64_t bytes) {
  void* at = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (at == MAP_FAILED) {
    return make_error(ErrorCode::kResourceExhausted, "reclaim pool: mmap of a {}-byte span: {}",
                      bytes, std::strerror(errno));
  }
  return Mapping(at, bytes);
}

void MemorySpans::release(Mapping&& span, uint64_t /*bytes*/) {
  span.reset();
}

Result<std::unique_ptr<CompressedPool>> CompressedPool::create(PoolConfig config) {
  const double threshold = config.keep_threshold;
  if (!(threshold > 0.0 && threshold <= 1.0) ||
      threshold * static_cast<double>(kPageSize) < kMinKeptEntry) {
    return make_error(ErrorCode::kInvalidArgument,
                      "reclaim pool: keep threshold {} must be in (0, 1] and keep at least {} "
                      "bytes of a page",
                      threshold, kMinKeptEntry);
  }
  return std::make_unique<CompressedPool>(std::move(config), Key{});
}

// The pool of a checked `config` (create() is the way in).
CompressedPool::CompressedPool(PoolConfig config, Key /*key*/)
    : codec_(config.codec),
      limit_bytes_(config.limit_bytes),
      classes_(static_cast<uint32_t>(config.keep_threshold * static_cast<double>(kPageSize))),
      swap_(std::move(config.swap)),
      memory_(classes_, memory_backing_) {
  if (swap_) {
    swapped_.emplace(classes_, *swap_);
  }
  counts_.codec = codec_name(codec_);
  counts_.limit_bytes = limit_bytes_;
}

CompressedPool::~CompressedPool() = default;

Result<StoreOutcome> CompressedPool::store(Ipa page, std::span<const uint8_t, kPageSize> contents) {
  if (!page.is_aligned(kPageSize)) {
    return make_error(ErrorCode::kInvalidArgument, "reclaim pool: store of unaligned page {}",
                      page);
  }
  // The expensive part, outside the lock: a same-filled check, or the compression.
  const std::optional<uint64_t> word = same_fill_word(contents);
  // The whole length, then the threshold: exact for either codec (pool_entry.h).
  const std::span<uint8_t, kEntryScratchSize> scratch = entry_buffer();
  const size_t encoded = word ? 0 : encode_entry(codec_, contents, scratch);
  const size_t length = encoded <= classes_.max_entry() ? encoded : 0;

  Locked locked(mutex_);
  ++counts_.stores;
  drop(locked, page.page_number());
  if (word) {
    Entry& entry = index_[page.page_number()];
    entry.where = Where::kSameFilled;
    entry.word = *word;
    ++(*word == 0 ? counts_.zero_pages : counts_.same_filled_pages);
    ++counts_.entries;
    return StoreOutcome::kSameFilled;
  }
  if (length == 0) {
    ++counts_.incompressible_rejects;
    return StoreOutcome::kIncompressible;
  }
  auto slot = place(locked, classes_.class_for(static_cast<uint32_t>(length)));
  if (!slot) {
    return slot.error();
  }
  if (!*slot) {
    ++counts_.full_rejects;
    return StoreOutcome::kFull;
  }
  std::memcpy(memory_slot(locked, **slot), scratch.data(), length);
  order_.push_back(page.page_number());
  Entry& entry = index_[page.page_number()];
  entry.where = Where::kMemory;
  entry.slot = **slot;
  entry.length = static_cast<uint32_t>(length);
  entry.age = std::prev(order_.end());
  ++counts_.entries;
  ++counts_.compressed_pages;
  counts_.payload_bytes += length;
  return StoreOutcome::kCompressed;
}

Result<void> CompressedPool::load(Ipa page, std::span<uint8_t, kPageSize> out) {
  const std::span<uint8_t, kEntryScratchSize> buffer = entry_buffer();
  std::span<uint8_t> entry;
  {
    Locked locked(mutex_);
    auto found = index_.find(page.page_number());
    if (found == index_.end() || !page.is_aligned(kPageSize)) {
      return make_error(ErrorCode::kNotFound, "reclaim pool: no entry for page {}", page);
    }
    if (found->second.where == Where::kSameFilled) {
      const uint64_t word = found->second.word;
      locked.unlock();
      fill_page(out, word);
      ++loads_;
      return Ok();
    }
    entry = buffer.first(found->second.length);
    auto copied = copy_entry(locked, page, found->second, entry);
    if (!copied) {
      ++load_errors_;
      return copied.error();
    }
  }
  auto decoded = decode_entry(entry, out);
  if (!decoded) {
    ++load_errors_;
    return make_error(ErrorCode::kDataLoss, "reclaim pool: page {}: {}", page,
                      decoded.error().message);
  }
  ++loads_;
  return Ok();
}

void CompressedPool::erase(Ipa page) {
  Locked locked(mutex_);
  drop(locked, page.page_number());
}

bool CompressedPool::contains(Ipa page) const {
  Locked locked(mutex_);
  return page.is_aligned(kPageSize) && index_.count(page.page_number()) != 0;
}

ReclaimStoreStats CompressedPool::stats() const {
  Locked locked(mutex_);
  ReclaimStoreStats stats = counts_;
  stats.pool_bytes = memory_.span_bytes();
  stats.swap_bytes = swapped_ ? swapped_->span_bytes() : 0;
  stats.loads = loads_.load();
  stats.load_errors = load_errors_.load();
  return stats;
}

void CompressedPool::drop(const Locked& /*locked*/, uint64_t page) {
  auto found = index_.find(page);
  if (found == index_.end()) {
    return;
  }
  const Entry& entry = found->second;
  switch (entry.where) {
    case Where::kSameFilled:
      --(entry.word == 0 ? counts_.zero_pages : counts_.same_filled_pages);
      break;
    case Where::kMemory:
      memory_.free_slot(entry.slot);
      order_.erase(entry.age);
      --counts_.compressed_pages;
      counts_.payload_bytes -= entry.length;
      break;
    case Where::kSwap:
      swapped_->free_slot(entry.slot);
      --counts_.swapped_pages;
      break;
  }
  --counts_.entries;
  index_.erase(found);
}

Result<std::optional<SlotRef>> CompressedPool::place(const Locked& locked, uint16_t size_class) {
  for (;;) {
    if (auto slot = memory_.take_free_slot(size_class)) {
      return std::optional<SlotRef>(*slot);
    }
    const uint64_t needed = memory_.span_bytes() + memory_.new_span_bytes(size_class);
    if (limit_bytes_ == 0 || needed <= limit_bytes_) {
      auto slot = memory_.take_slot_in_new_span(size_class);
      if (!slot) {
        return slot.error();
      }
      return std::optional<SlotRef>(*slot);
    }
    // At the limit: without a swap file (or one that cannot take more) the pool is full.
    if (!swapped_ || order_.empty() || !evict_oldest(locked)) {
      return std::optional<SlotRef>();
    }
  }
}

Result<void> CompressedPool::evict_oldest(const Locked& locked) {
  const uint64_t page = order_.front();
  Entry& entry = index_.at(page);
  auto file_slot = swapped_->take_free_slot(entry.slot.size_class);
  if (!file_slot) {
    auto fresh = swapped_->take_slot_in_new_span(entry.slot.size_class);
    if (!fresh) {
      return fresh.error();
    }
    file_slot = *fresh;
  }
  const SwapExtent& extent = swapped_->storage(*file_slot);
  auto written = swap_->write(extent.offset + swapped_->offset_in_span(*file_slot),
                              {memory_slot(locked, entry.slot), entry.length});
  if (!written) {
    swapped_->free_slot(*file_slot);
    return written;
  }
  memory_.free_slot(entry.slot);
  order_.pop_front();
  entry.where = Where::kSwap;
  entry.slot = *file_slot;
  --counts_.compressed_pages;
  counts_.payload_bytes -= entry.length;
  ++counts_.swapped_pages;
  ++counts_.swap_writes;
  return Ok();
}

uint8_t* CompressedPool::memory_slot(const Locked& /*locked*/, SlotRef slot) {
  return memory_.storage(slot).data() + memory_.offset_in_span(slot);
}

Result<void> CompressedPool::copy_entry(const Locked& locked, Ipa page, const Entry& entry,
                                        std::span<uint8_t> out) {
  if (entry.where == Where::kMemory) {
    std::memcpy(out.data(), memory_slot(locked, entry.slot), entry.length);
    return Ok();
  }
  ++counts_.swap_reads;
  const SwapExtent& extent = swapped_->storage(entry.slot);
  auto read = swap_->read(extent.offset + swapped_->offset_in_span(entry.slot), out);
  if (!read) {
    return make_error(ErrorCode::kDataLoss, "reclaim pool: page {}: {}", page,
                      read.error().message);
  }
  return Ok();
}

}  // namespace hvmm::vmm
