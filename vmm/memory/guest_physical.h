// GuestPhysical: one VM's guest-physical space, the stage-2 map plus the memory behind it.
//
// RAM regions are mapped into the VM's Stage2Map with host offsets into one memfd
// (GuestMemory). Once a MemslotSink is attached, KVM's memslots follow the map through a
// MemslotSync hook. VMM-side reads and writes of guest memory go through the map's
// Translator (stage-2 TLB first, then a walk of the map), which checks residency,
// permissions and the backing's bounds.
//
// Hooks on the map, in order: MMU notifiers, stage-2 TLB invalidation, memslot sync.
// Locking: the map is not internally synchronized. The Translator and the initial memslot
// sync take the lock shared; changes to the map (unmap_ram, ...) take it exclusively.
// Every change is also fenced: the owner's pause callback (Machine: stop the vCPUs at their
// VcpuGate) runs before the lock is taken, so no vCPU is inside KVM_RUN while memslots are
// deleted and recreated, and no vCPU exit handler is blocked on the lock while the pauser
// waits for it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "hvmm/stage2/mmu_notifier.h"
#include "hvmm/stage2/stage2_map.h"
#include "hvmm/stage2/stage2_tlb.h"
#include "hvmm/stage2/table_allocator.h"
#include "hvmm/stage2/translator.h"
#include "hvmm/vmm/memory/guest_access.h"
#include "hvmm/vmm/memory/guest_memory.h"
#include "hvmm/vmm/memory/memory_layout.h"
#include "hvmm/vmm/memory/memslot_sync.h"

namespace hvmm::vmm {

class GuestPhysical final : public GuestAccess {
 public:
  // Create `memory_size` bytes of RAM laid out by ram_layout() and mapped in a new map.
  static Result<std::unique_ptr<GuestPhysical>> create(uint64_t memory_size,
                                                       const std::string& name, uint16_t vmid);
  GuestPhysical(std::unique_ptr<GuestMemory> memory, std::vector<RamRegion> ram, uint16_t vmid);
  ~GuestPhysical() override;
  GuestPhysical(const GuestPhysical&) = delete;
  GuestPhysical& operator=(const GuestPhysical&) = delete;

  // Realize the map as memslots through `sink` and keep them in step from now on. Holds the
  // map lock only shared across the KVM ioctls, so it may run on another thread while guest
  // memory is accessed; map changes wait for it. Call once.
  Result<void> attach_memslots(MemslotSink& sink);
  // Callbacks run around every change of the map: `pause` before it, `resume` after it.
  void set_change_fence(std::function<void()> pause, std::function<void()> resume);

  Result<void> read(Ipa ipa, std::span<uint8_t> out) override;
  Result<void> write(Ipa ipa, std::span<const uint8_t> data) override;

  // Remove `range` from the guest's RAM (memslots follow, backing is released).
  Result<void> unmap_ram(IpaRange range);
  // Whether `ipa` is resident RAM according to the map.
  bool is_ram(Ipa ipa) const;

  const std::vector<RamRegion>& ram() const { return ram_; }
  uint64_t memory_size() const { return memory_->size(); }
  const stage2::Stage2Map& map() const { return *map_; }
  GuestMemory& memory() { return *memory_; }
  const MemslotSync* memslots() const { return memslots_.get(); }
  const stage2::Stage2Tlb& tlb() const { return tlb_; }

 private:
  Result<void> map_ram();
  // Run `change` with the fence up and the map lock held exclusively.
  Result<void> fenced_change(const std::function<Result<void>()>& change);

  std::unique_ptr<GuestMemory> memory_;
  std::vector<RamRegion> ram_;
  uint16_t vmid_;
  stage2::HeapTableAllocator tables_;
  std::optional<stage2::Stage2Map> map_;
  mutable std::shared_mutex lock_;
  stage2::Stage2Tlb tlb_;
  stage2::NotifierRegistry notifiers_;
  stage2::NotifierHooks notifier_hooks_{notifiers_};
  stage2::TlbInvalidationHooks tlb_hooks_{tlb_, vmid_};
  std::optional<stage2::Translator> translator_;
  std::unique_ptr<MemslotSync> memslots_;
  std::function<void()> pause_;
  std::function<void()> resume_;
};

}  // namespace hvmm::vmm
