// DirtyRing: the DirtySource over KVM's per-vCPU dirty rings (KVM_CAP_DIRTY_LOG_RING).
//
// The ring is enabled on the VM before any vCPU exists (KvmVm::enable_dirty_ring) and every
// slot carries KVM_MEM_LOG_DIRTY_PAGES; each vCPU's ring is mapped (KvmDirtyRing) and added
// here before the vCPUs run. KVM pushes one entry per page a vCPU dirties; the page is then
// write-protected again only when its entry is reset, so a page is pushed at most once per
// epoch per vCPU. A harvest takes every ring's published entries (DirtyRingReader), adds the
// pending set, calls KVM_RESET_DIRTY_RINGS, turns (slot, offset) into IPA through the memslot
// table, and reports each page once (sorted, de-duplicated, coalesced into runs). The cost
// grows with the pages written, not with the size of guest RAM.
//
// A ring that fills between harvests makes its vCPU exit (KVM_EXIT_DIRTY_RING_FULL, at the
// ring's size less KVM's reserve): the vCPU thread calls ring_full(), which moves that ring's
// entries into the pending set and resets, so the vCPU re-enters at once with room. Each ring
// has its own lock, so the engine's harvest and a vCPU's ring_full() never read one ring at
// the same time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/memory/memslots.h"
#include "hvmm/vmm/reclaim/dirty/dirty_ring_reader.h"
#include "hvmm/vmm/reclaim/dirty/dirty_source.h"

namespace hvmm::vmm {

// KVM_RESET_DIRTY_RINGS on the VM (KvmVm::reset_dirty_rings; a fake in tests): the entries reset.
using ResetDirtyRings = std::function<Result<uint64_t>()>;

class DirtyRing final : public DirtySource {
 public:
  // Harvest through `reset` and the slots of `slots` (which must outlive the DirtyRing).
  DirtyRing(ResetDirtyRings reset, const MemslotTable& slots)
      : reset_(std::move(reset)), slots_(slots) {}

  // Read vCPU `vcpu`'s ring at `entries` from now on; `owner`, when given, keeps its mapping.
  // Only before the vCPUs run (the set of rings is fixed afterwards).
  void add_ring(unsigned vcpu, std::span<kvm_dirty_gfn> entries,
                std::optional<KvmDirtyRing> owner = std::nullopt);
  // Add a mapped vCPU ring (add_ring over its entries, keeping the mapping).
  void add_ring(KvmDirtyRing ring);
  // KVM_EXIT_DIRTY_RING_FULL on `vcpu`: move its ring's entries into the pending set and reset
  // the rings, so the vCPU has room when it re-enters. Fails (the vCPU must stop, not spin)
  // for an unknown vCPU, a failed reset, or a ring that stays full with nothing to take.
  Result<void> ring_full(unsigned vcpu);

  // Every ring and the pending set, reset, converted, each page once.
  Result<void> harvest(const std::function<void(IpaRange run)>& written) override;
  DirtyTracking kind() const override { return DirtyTracking::kRing; }
  DirtySourceStats stats() const override;
  // Entries that named no installed slot (or a page past its end): a slot deleted by a layout
  // change after KVM pushed them. Dropped, counted.
  uint64_t unknown_entries() const;

 private:
  // One vCPU's ring, its reader and the lock that makes one thread read it at a time.
  struct Ring {
    Ring(unsigned id, std::span<kvm_dirty_gfn> entries, std::optional<KvmDirtyRing> mapping)
        : vcpu(id), owner(std::move(mapping)), reader(entries) {}
    unsigned vcpu;
    std::optional<KvmDirtyRing> owner;
    std::mutex lock;
    DirtyRingReader reader;
    unsigned empty_full_exits = 0;  // ring_full() calls in a row that found nothing
  };
  // Append `taken` to the pending set; de-duplicate it when it has doubled, so it stays
  // bounded by the pages of guest RAM however long the engine waits.
  void add_pending(const std::vector<DirtyGfn>& taken);
  // The IPA page numbers of `gfns`, sorted and unique, through the slot table.
  std::vector<uint64_t> pages_of(const std::vector<DirtyGfn>& gfns);

  ResetDirtyRings reset_;
  const MemslotTable& slots_;
  std::vector<std::unique_ptr<Ring>> rings_;
  std::mutex pending_lock_;
  std::vector<DirtyGfn> pending_;  // taken by ring_full(), reported by the next harvest
  size_t compact_at_ = 0;          // pending_'s size that triggers the next de-duplication
  mutable std::mutex stats_lock_;
  DirtySourceStats stats_;
  uint64_t unknown_entries_ = 0;
};

}  // namespace hvmm::vmm
