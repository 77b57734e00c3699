// MemslotSync keeps KVM's memslots equal to the resident RAM runs of the stage-2 map.
//
// The Stage2Map is the source of truth; KVM's memslots are a realization of it. MemslotSync
// is a ChangeHooks observer: after every change (break-before-make step 3) it recomputes the
// memslots the map implies and applies the difference, and it releases the host backing
// (MADV_REMOVE) of pages that stopped being resident, so the map, the memslots and the host
// RSS never disagree. Read-only runs become KVM_MEM_READONLY slots.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/stage2/change.h"
#include "hvmm/stage2/stage2_map.h"
#include "hvmm/vmm/memory/guest_memory.h"

namespace hvmm::vmm {

// Memslot is one KVM memory slot: a guest-physical range backed from a memfd offset.
struct Memslot {
  uint32_t slot = 0;
  IpaRange range;
  HostOffset offset;
  bool read_only = false;

  // Same placement (slot ids are not compared).
  bool same_placement(const Memslot& other) const {
    return range == other.range && offset == other.offset && read_only == other.read_only;
  }
};

// MemslotSink applies memslots; the KVM VM in production, a recorder in tests.
class MemslotSink {
 public:
  virtual ~MemslotSink() = default;
  // Install `slot` (host pointer `host`), or delete it when slot.range.size is 0.
  virtual Result<void> set_memslot(const Memslot& slot, void* host) = 0;
};

class MemslotSync final : public stage2::ChangeHooks {
 public:
  MemslotSync(const stage2::Stage2Map& map, GuestMemory& memory, MemslotSink& sink)
      : map_(map), memory_(memory), sink_(sink) {}

  // Realize the map's current resident runs as memslots (adds, moves and deletes slots).
  Result<void> sync();
  // The memslots currently installed, in IPA order.
  const std::vector<Memslot>& slots() const { return slots_; }
  // The memslots the map implies right now.
  std::vector<Memslot> desired_slots() const;
  // The first error a hook met (hooks cannot fail the map change), if any.
  const std::optional<Error>& hook_error() const { return hook_error_; }

  void range_start(const stage2::Change& change) override;
  void range_updated(const stage2::Change& change) override;

 private:
  // A host range that was resident when a change started.
  struct ResidentPart {
    Ipa ipa;
    HostOffset output;
    uint64_t size;
  };
  uint32_t next_free_slot() const;
  Result<void> release_dropped();
  void note(Result<void> result);

  const stage2::Stage2Map& map_;
  GuestMemory& memory_;
  MemslotSink& sink_;
  std::vector<Memslot> slots_;
  std::vector<ResidentPart> pending_;
  std::optional<Error> hook_error_;
};

}  // namespace hvmm::vmm
