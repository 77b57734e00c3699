// DirtyRingReader: the user side of one vCPU's dirty ring (KVM_CAP_DIRTY_LOG_RING).
//
// KVM pushes one kvm_dirty_gfn per page the vCPU dirties (once per page until that page is
// re-armed) at its own index and publishes it by setting the entry's flags to DIRTY last. The
// reader keeps the fetch index: it takes entries in ring order, for each one loads the flags
// with acquire (so the slot and offset read after them are the ones KVM published), reads the
// entry, and marks it harvested by storing RESET with release (so KVM, which recycles the
// entry at KVM_RESET_DIRTY_RINGS, never sees the mark before the reads are done). It stops at
// the first entry not published yet: entries must be harvested in sequence, none skipped.
// KVM_RESET_DIRTY_RINGS (the caller's) then re-protects the pages and frees the entries.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <functional>
#include <span>

namespace hvmm::vmm {

// One harvested entry: page `offset` of memslot `slot` (address space in the upper 16 bits
// of `slot`, the slot id in the lower 16).
struct DirtyGfn {
  uint32_t slot = 0;
  uint64_t offset = 0;
  bool operator==(const DirtyGfn&) const = default;
};

class DirtyRingReader {
 public:
  // Read `ring` (its size a power of two) from entry `fetch_index`, normally 0.
  explicit DirtyRingReader(std::span<kvm_dirty_gfn> ring, uint32_t fetch_index = 0)
      : ring_(ring), fetch_(fetch_index) {}

  // Hand every entry published since the last call to `collect`, in ring order, marking each
  // harvested; stops at the first unpublished entry, and after one lap at most. Returns how
  // many were taken.
  uint64_t harvest(const std::function<void(DirtyGfn)>& collect);
  // The free-running index of the next entry to read (KVM's indices are 32 bits too).
  uint32_t fetch_index() const { return fetch_; }
  size_t size() const { return ring_.size(); }

 private:
  std::span<kvm_dirty_gfn> ring_;
  uint32_t fetch_;
};

}  // namespace hvmm::vmm
