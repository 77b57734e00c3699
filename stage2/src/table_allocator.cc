// HeapTableAllocator: 4 KiB-aligned zeroed tables from the heap, with a limit.
#include "hvmm/stage2/table_allocator.h"

#include <cstdlib>
#include <cstring>

#include "hvmm/base/address.h"

namespace hvmm::stage2 {

HeapTableAllocator::~HeapTableAllocator() {
  for (uint64_t* table : cache_)
    std::free(table);
}

uint64_t* HeapTableAllocator::allocate_table() {
  if (in_use_ >= max_tables_)
    return nullptr;
  void* table = nullptr;
  if (!cache_.empty()) {
    table = cache_.back();
    cache_.pop_back();
  } else {
    table = std::aligned_alloc(kPageSize, kPageSize);
  }
  if (table == nullptr)
    return nullptr;
  std::memset(table, 0, kPageSize);
  ++in_use_;
  if (in_use_ > peak_)
    peak_ = in_use_;
  return static_cast<uint64_t*>(table);
}

void HeapTableAllocator::free_table(uint64_t* table) {
  --in_use_;
  if (cache_.size() < max_cached_) {
    cache_.push_back(table);
    return;
  }
  std::free(table);
}

}  // namespace hvmm::stage2
