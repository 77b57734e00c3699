// TableAllocator: where stage-2 translation tables come from.
//
// Injected into the map (as Linux's kvm_pgtable_mm_ops are) so tests can bound table memory
// and count allocations. A table is one 4 KiB-aligned page of 512 descriptors; its address
// is what table descriptors store (user space runs with "physical" == virtual for tables,
// and canonical user addresses fit the descriptors' [47:12] address field).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hvmm::stage2 {

class TableAllocator {
 public:
  virtual ~TableAllocator() = default;
  // Return a zeroed, 4 KiB-aligned 4 KiB table, or nullptr when none is left.
  virtual uint64_t* allocate_table() = 0;
  // Give back a table obtained from allocate_table().
  virtual void free_table(uint64_t* table) = 0;
};

// HeapTableAllocator takes tables from the C++ heap, up to an optional limit, and keeps
// freed tables in a bounded cache for reuse (like KVM's mmu memory caches): page-table
// pages churn with every map/unmap, and handing them back to the heap lets it return the
// memory to the kernel, so the next map pays a page fault per table.
class HeapTableAllocator final : public TableAllocator {
 public:
  static constexpr size_t kUnlimited = SIZE_MAX;
  static constexpr size_t kDefaultCachedTables = 1024;  // 4 MiB

  explicit HeapTableAllocator(size_t max_tables = kUnlimited,
                              size_t cached_tables = kDefaultCachedTables)
      : max_tables_(max_tables), max_cached_(cached_tables) {}
  ~HeapTableAllocator() override;
  HeapTableAllocator(const HeapTableAllocator&) = delete;
  HeapTableAllocator& operator=(const HeapTableAllocator&) = delete;

  uint64_t* allocate_table() override;
  void free_table(uint64_t* table) override;

  size_t tables_in_use() const { return in_use_; }
  size_t peak_tables() const { return peak_; }
  void set_limit(size_t max_tables) { max_tables_ = max_tables; }

 private:
  size_t max_tables_;
  size_t max_cached_;
  std::vector<uint64_t*> cache_;
  size_t in_use_ = 0;
  size_t peak_ = 0;
};

}  // namespace hvmm::stage2
