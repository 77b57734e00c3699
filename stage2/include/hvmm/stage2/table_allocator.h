// TableAllocator: where stage-2 translation tables come from.
//
// Injected into the map (as Linux's kvm_pgtable_mm_ops are) so tests can bound table memory
// and count allocations. A table is one 4 KiB-aligned page of 512 descriptors; its address
// is what table descriptors store (user space runs with "physical" == virtual for tables,
// and canonical user addresses fit the descriptors' [47:12] address field).
#pragma once

#include <cstddef>
#include <cstdint>

namespace hvmm::stage2 {

class TableAllocator {
 public:
  virtual ~TableAllocator() = default;
  // Return a zeroed, 4 KiB-aligned 4 KiB table, or nullptr when none is left.
  virtual uint64_t* allocate_table() = 0;
  // Give back a table obtained from allocate_table().
  virtual void free_table(uint64_t* table) = 0;
};

// HeapTableAllocator takes tables from the C++ heap, up to an optional limit.
class HeapTableAllocator final : public TableAllocator {
 public:
  static constexpr size_t kUnlimited = SIZE_MAX;

  explicit HeapTableAllocator(size_t max_tables = kUnlimited) : max_tables_(max_tables) {}
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
  size_t in_use_ = 0;
  size_t peak_ = 0;
};

}  // namespace hvmm::stage2
