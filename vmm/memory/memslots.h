// RegionMemslots: one KVM memslot per RAM region, for the life of the VM.
//
// KVM's memslots realize the layout of guest RAM, not the state of its pages: each RAM
// region is one slot over the primary mapping of the memfd, created when the VM is built and
// kept as long as the region exists. Page-state changes (balloon, free page reporting,
// reclaim) never touch a slot: they punch holes in the memfd (page_realization.h) and KVM
// follows through the host kernel's MMU notifier. Only a layout change (unmap_ram) deletes
// and recreates slots, because KVM cannot shrink or split a slot atomically; the owner
// fences vCPUs around it (GuestPhysical::set_layout_fence). Every slot carries the flags its
// sink asks for (KVM_MEM_LOG_DIRTY_PAGES when dirty tracking is on), recreated slots included.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/memory/guest_memory.h"
#include "hvmm/vmm/memory/memory_layout.h"

namespace hvmm::vmm {

// Memslot is one KVM memory slot: a guest-physical range backed from a memfd offset.
struct Memslot {
  uint32_t slot = 0;
  IpaRange range;
  HostOffset offset;
  uint32_t flags = 0;  // KVM_MEM_* (e.g. KVM_MEM_LOG_DIRTY_PAGES), from the sink

  // The slot's pages (a dirty bitmap has one bit per page).
  uint64_t pages() const { return range.size / kPageSize; }

  // Same placement (slot ids are not compared).
  bool same_placement(const Memslot& other) const {
    return range == other.range && offset == other.offset;
  }
};

// MemslotSink applies memslots; the KVM VM in production, a recorder in tests.
class MemslotSink {
 public:
  virtual ~MemslotSink() = default;
  // Install `slot` (host pointer `host`), or delete it when slot.range.size is 0.
  virtual Result<void> set_memslot(const Memslot& slot, void* host) = 0;
  // The KVM_MEM_* flags every slot this sink installs carries (0: none).
  virtual uint32_t slot_flags() const { return 0; }
};

// MemslotTable: the slots installed right now, for readers on other threads (dirty tracking
// turns slot-relative page numbers into IPAs with it, and names slots in its ioctls).
class MemslotTable {
 public:
  virtual ~MemslotTable() = default;
  // Call `reader` with the installed slots in IPA order; no slot is created or deleted until
  // it returns, so `reader` must not wait for a layout change (nor take the map lock).
  virtual void visit(const std::function<void(std::span<const Memslot>)>& reader) const = 0;
};

class RegionMemslots {
 public:
  RegionMemslots(const GuestMemory& memory, MemslotSink& sink) : memory_(memory), sink_(sink) {}

  // Make the installed slots exactly one per region of `ram`: slots whose region is gone or
  // changed are deleted first (KVM forbids overlapping slots), then the missing ones are
  // created over the primary mapping. Slots of unchanged regions are left alone.
  Result<void> sync(const std::vector<RamRegion>& ram);
  // The memslots currently installed, in IPA order.
  const std::vector<Memslot>& slots() const { return slots_; }

 private:
  uint32_t next_free_slot() const;

  const GuestMemory& memory_;
  MemslotSink& sink_;
  std::vector<Memslot> slots_;
};

}  // namespace hvmm::vmm
