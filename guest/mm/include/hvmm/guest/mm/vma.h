// VmaTree: the virtual memory areas of one address space, in an AVL tree keyed by start.
//
// Areas never overlap. Lookups used by the page-fault handler (find the area containing an
// address) and by mmap (find a gap) are O(log n); insert and erase rebalance by rotations.
// Nodes are intrusive: the tree never allocates; AddressSpace allocates Vma objects.
#pragma once

#include <cstdint>

#include "hvmm/base/address.h"

namespace hvmm::guest::mm {

// Access rights of an area (PROT_READ/WRITE/EXEC values).
enum VmProt : uint32_t {
  kVmNone = 0,
  kVmRead = 1,
  kVmWrite = 2,
  kVmExec = 4,
};

// What kind of area it is.
enum VmaKind : uint32_t {
  kVmaAnon = 0,  // mmap(MAP_ANONYMOUS)
  kVmaHeap = 1,  // the brk area
};

// One area [start, end) with its rights; also its own tree node.
struct Vma {
  VirtAddr start;
  VirtAddr end;
  uint32_t prot = 0;
  uint32_t kind = 0;
  Vma* left = nullptr;
  Vma* right = nullptr;
  Vma* parent = nullptr;
  int height = 1;
};

// An AVL tree of non-overlapping Vmas ordered by start.
class VmaTree {
 public:
  // Insert `vma`; return false (and leave the tree unchanged) if it overlaps an area.
  bool insert(Vma* vma);
  // Remove `vma`, which must be in the tree.
  void erase(Vma* vma);
  // Return the area containing `address`, or nullptr.
  Vma* find(VirtAddr address) const;
  // Return the lowest area whose end is above `address` (it may start above it), or nullptr.
  Vma* find_next(VirtAddr address) const;
  // Return the last area that ends at or below `address`, or nullptr.
  Vma* find_prev(VirtAddr address) const;
  // In-order neighbours and extremes.
  Vma* first() const;
  Vma* last() const;
  static Vma* next(const Vma* vma);
  static Vma* prev(const Vma* vma);
  uint64_t count() const { return count_; }
  // Check the AVL and ordering invariants (tests); return false on a violation.
  bool validate() const;

 private:
  static int height(const Vma* node) { return node != nullptr ? node->height : 0; }
  static void update(Vma* node);
  void rotate_left(Vma* node);
  void rotate_right(Vma* node);
  void rebalance_from(Vma* node);
  void replace_child(Vma* parent, Vma* old_child, Vma* new_child);
  static bool validate_node(const Vma* node, const Vma* parent, VirtAddr lo, VirtAddr hi,
                            int* height_out);

  Vma* root_ = nullptr;
  uint64_t count_ = 0;
};

}  // namespace hvmm::guest::mm
