// Guest-physical space: stage-2 map, memfd backing and translated guest memory access.
#include "hvmm/vmm/memory/guest_physical.h"

#include <algorithm>
#include <cstring>
#include <mutex>

namespace hvmm::vmm {

// Build the backing, the map and map every RAM region into it.
Result<std::unique_ptr<GuestPhysical>> GuestPhysical::create(uint64_t memory_size,
                                                             const std::string& name,
                                                             uint16_t vmid) {
  auto memory = GuestMemory::create(memory_size, name);
  HVMM_TRY(memory);
  auto physical =
      std::make_unique<GuestPhysical>(std::move(*memory), ram_layout(memory_size), vmid);
  HVMM_TRY(physical->map_ram());
  return physical;
}

// Take the backing and its layout; map_ram() builds the map.
GuestPhysical::GuestPhysical(std::unique_ptr<GuestMemory> memory, std::vector<RamRegion> ram,
                             uint16_t vmid)
    : memory_(std::move(memory)), ram_(std::move(ram)), vmid_(vmid) {}

// Detach the hooks before the map and its observers go away.
GuestPhysical::~GuestPhysical() {
  if (!map_) {
    return;
  }
  if (memslots_) {
    map_->remove_hooks(*memslots_);
  }
  map_->remove_hooks(tlb_hooks_);
  map_->remove_hooks(notifier_hooks_);
}

// Create the map over kIpaBits, map each RAM region resident and read-write-execute, then
// register the coherence hooks and make the translator over the whole backing.
Result<void> GuestPhysical::map_ram() {
  auto space = stage2::IpaSpace::create(kIpaBits);
  HVMM_TRY(space);
  auto map = stage2::Stage2Map::create(*space, tables_);
  HVMM_TRY(map);
  map_.emplace(std::move(*map));
  for (const RamRegion& region : ram_) {
    HVMM_TRY(map_->map(region.range, region.offset, stage2::kRamAttributes));
  }
  map_->add_hooks(notifier_hooks_);
  map_->add_hooks(tlb_hooks_);
  auto base = memory_->host_pointer(HostOffset(0), memory_->size());
  HVMM_TRY(base);
  stage2::HostBacking backing{reinterpret_cast<std::byte*>(*base), memory_->size()};
  auto translator = stage2::Translator::create(*map_, lock_, tlb_, notifiers_, vmid_, backing);
  HVMM_TRY(translator);
  translator_.emplace(std::move(*translator));
  return Ok();
}

// Register the hook that keeps the memslots in step, then install them once. The initial
// sync only reads the map, so it holds the lock shared: translator accesses go on meanwhile
// (Machine loads the kernel during this slow first ioctl), while a map change, which takes
// the lock exclusively and re-syncs from the hook, waits for it.
Result<void> GuestPhysical::attach_memslots(MemslotSink& sink) {
  {
    std::unique_lock guard(lock_);
    memslots_ = std::make_unique<MemslotSync>(*map_, *memory_, sink);
    map_->add_hooks(*memslots_);
  }
  std::shared_lock guard(lock_);
  return memslots_->sync();
}

// Copy out through the translator (TLB, then map walk; every page checked first).
Result<void> GuestPhysical::read(Ipa ipa, std::span<uint8_t> out) {
  return translator_->read(ipa, std::as_writable_bytes(out));
}

// Copy in through the translator.
Result<void> GuestPhysical::write(Ipa ipa, std::span<const uint8_t> data) {
  return translator_->write(ipa, std::as_bytes(data));
}

// Install the owner's pause/resume callbacks.
void GuestPhysical::set_change_fence(std::function<void()> pause, std::function<void()> resume) {
  pause_ = std::move(pause);
  resume_ = std::move(resume);
}

// Fence, lock, change, report a hook failure, unlock, unfence.
Result<void> GuestPhysical::fenced_change(const std::function<Result<void>()>& change) {
  if (pause_) {
    pause_();
  }
  Result<void> result;
  {
    std::unique_lock guard(lock_);
    result = change();
    if (result.ok() && memslots_ && memslots_->hook_error()) {
      result = *memslots_->hook_error();
    }
  }
  if (resume_) {
    resume_();
  }
  return result;
}

// Unmap with the vCPUs fenced; the hooks realize it on KVM and release the backing.
Result<void> GuestPhysical::unmap_ram(IpaRange range) {
  return fenced_change([&] { return map_->unmap(range); });
}

// Ask the map whether `ipa` is backed by resident RAM.
bool GuestPhysical::is_ram(Ipa ipa) const {
  std::shared_lock guard(lock_);
  auto translation = map_->translate(ipa);
  return translation && translation->state.backing == stage2::Backing::kResident;
}

}  // namespace hvmm::vmm
