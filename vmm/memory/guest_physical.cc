// Guest-physical space: stage-2 map, memfd backing, page-state changes and translated access.
#include "hvmm/vmm/memory/guest_physical.h"

#include <mutex>

namespace hvmm::vmm {
namespace {

using stage2::Backing;

// The update that sets only the backing.
stage2::PageStateUpdate backing_update(Backing backing) {
  return stage2::PageStateUpdate{.set_backing = true, .backing = backing};
}

// Make an IPA range's error name the operation.
Error in_operation(const char* what, IpaRange run, const Error& error) {
  return Error{error.code, fmt::format("{} {}: {}", what, run, error.message)};
}

}  // namespace

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
  map_->remove_hooks(*realization_);
  map_->remove_hooks(*counter_);
  map_->remove_hooks(tlb_hooks_);
  map_->remove_hooks(notifier_hooks_);
}

// Create the map over kIpaBits and register the hooks (notifiers first: the TLB fill check
// relies on the sequence being bumped before range_updated), then map each RAM region
// resident and read-write-execute, and make the translator over the alias mapping.
Result<void> GuestPhysical::map_ram() {
  auto space = stage2::IpaSpace::create(kIpaBits);
  HVMM_TRY(space);
  auto map = stage2::Stage2Map::create(*space, tables_);
  HVMM_TRY(map);
  map_.emplace(std::move(*map));
  counter_.emplace(*map_);
  realization_.emplace(*map_, *memory_);
  map_->add_hooks(notifier_hooks_);
  map_->add_hooks(tlb_hooks_);
  map_->add_hooks(*counter_);
  map_->add_hooks(*realization_);
  for (const RamRegion& region : ram_) {
    HVMM_TRY(map_->map(region.range, region.offset, stage2::kRamAttributes));
  }
  stage2::HostBacking backing{reinterpret_cast<std::byte*>(memory_->alias_base()), memory_->size()};
  auto translator = stage2::Translator::create(*map_, lock_, tlb_, notifiers_, vmid_, backing);
  HVMM_TRY(translator);
  translator_.emplace(std::move(*translator));
  return Ok();
}

// Install the per-region memslots once. Installing only reads the layout, so it holds the
// lock shared: translator accesses go on meanwhile (Machine loads the kernel during this slow
// first ioctl), while a change, which takes the lock exclusively, waits for it.
Result<void> GuestPhysical::attach_memslots(MemslotSink& sink) {
  std::shared_lock guard(lock_);
  memslots_ = std::make_unique<RegionMemslots>(*memory_, sink);
  return memslots_->sync(ram_);
}

// Install the owner's pause/resume callbacks.
void GuestPhysical::set_layout_fence(std::function<void()> pause, std::function<void()> resume) {
  pause_ = std::move(pause);
  resume_ = std::move(resume);
}

// The translator fills and looks up, the hooks invalidate: both follow the new VMID.
void GuestPhysical::set_vmid(uint16_t vmid) {
  std::unique_lock guard(lock_);
  vmid_ = vmid;
  tlb_hooks_.set_vmid(vmid);
  translator_->set_vmid(vmid);
}

// A committed change whose punch failed is reported: the map changed, the memfd may not have.
Result<void> GuestPhysical::realized(Result<void> changed) {
  std::optional<Error> punch_error = realization_->take_error();
  if (!changed.ok())
    return changed;
  if (punch_error)
    return make_error(punch_error->code, "the map changed but its release failed: {}",
                      punch_error->message);
  return Ok();
}

// One change of one run, the lock held exclusively (the guard proves it). Counting the run
// first answers what will change, skips a change that would change nothing and refuses to
// make reclaimed pages resident unless the caller restores their contents. A change of pages
// an open reclaim window holds takes them out of it (their contents are not the window's).
Result<PageCounts> GuestPhysical::change_backing(const std::unique_lock<std::shared_mutex>&,
                                                 IpaRange run, Backing backing,
                                                 const ChangeOptions& options) {
  PageCounts changed = count_pages(*map_, run);
  if (!run.empty() && changed.total() * kPageSize == run.size &&
      changed[backing] == changed.total()) {
    return PageCounts{};
  }
  if (backing == Backing::kResident && !options.restores_contents &&
      changed[Backing::kReclaimed] != 0) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "cannot make {} resident: {} of its pages are reclaimed (their contents "
                      "are in the pool; a fault restores them)",
                      run, changed[Backing::kReclaimed]);
  }
  if (options.marks_window)
    window_.mark_changed(run);
  HVMM_TRY(realized(
      map_->set_page_state(run, backing_update(backing), options.reason, options.blockable)));
  changed[backing] = 0;
  return changed;
}

Result<PageCounts> GuestPhysical::set_backing(IpaRange run, Backing backing,
                                              stage2::ChangeReason reason, bool blockable) {
  std::unique_lock guard(lock_);
  return change_backing(guard, run, backing, ChangeOptions{reason, blockable, false});
}

// One change per run under one lock; failures are counted, not fatal.
BackingBatch GuestPhysical::set_backing_runs(std::span<const IpaRange> runs, Backing backing,
                                             stage2::ChangeReason reason, bool blockable) {
  BackingBatch batch;
  batch.runs = runs.size();
  std::unique_lock guard(lock_);
  for (const IpaRange& run : runs) {
    auto changed = change_backing(guard, run, backing, ChangeOptions{reason, blockable, false});
    if (changed.ok()) {
      batch.changed += *changed;
      continue;
    }
    ++batch.failed_runs;
    if (!batch.first_error)
      batch.first_error = changed.error();
  }
  return batch;
}

// The absent runs are read before the change (afterwards the map says resident everywhere),
// then made resident and filled, all under the exclusive lock: a Translator access waits for
// the lock, and no TLB entry can exist for a page that was not resident.
Result<PageCounts> GuestPhysical::make_resident(IpaRange run, stage2::ChangeReason reason,
                                                const Fill& fill) {
  std::unique_lock guard(lock_);
  std::vector<std::pair<IpaRange, HostOffset>> absent;
  if (fill) {
    for_each_host_run(
        *map_, run,
        [](stage2::Descriptor leaf) { return leaf.state().backing != Backing::kResident; },
        [&](IpaRange part, HostOffset output) { absent.emplace_back(part, output); });
  }
  auto changed = change_backing(guard, run, Backing::kResident,
                                ChangeOptions{reason, /*blockable=*/true, true});
  HVMM_TRY(changed);
  for (const auto& [part, output] : absent) {
    if (Result<void> filled = fill(part, output); !filled.ok())
      return in_operation("filling", part, filled.error());
  }
  return changed;
}

// Fence, lock, unmap (the hooks punch the backing), reshape the regions and their slots.
// Once the map changed, the regions and slots follow it even if the punch failed.
Result<void> GuestPhysical::unmap_ram(IpaRange range) {
  if (pause_) {
    pause_();
  }
  Result<void> result = Ok();
  {
    std::unique_lock guard(lock_);
    window_.mark_changed(range);
    Result<void> unmapped = map_->unmap(range);
    Result<void> slots = Ok();
    if (unmapped.ok()) {
      ram_ = ram_without(ram_, range);
      if (memslots_)
        slots = memslots_->sync(ram_);
    }
    result = realized(std::move(unmapped));
    if (result.ok())
      result = std::move(slots);
  }
  if (resume_) {
    resume_();
  }
  return result;
}

// Ask the map whether `ipa` is backed by resident RAM.
bool GuestPhysical::is_ram(Ipa ipa) const {
  std::shared_lock guard(lock_);
  auto translation = map_->translate(ipa);
  return translation && translation->state.backing == stage2::Backing::kResident;
}

RealizationStats GuestPhysical::realization_stats() const {
  std::shared_lock guard(lock_);
  return realization_->stats();
}

PageCounts GuestPhysical::page_counts() const {
  std::shared_lock guard(lock_);
  return counter_->counts();
}

PageCounts GuestPhysical::count_pages_by_walk() const {
  std::shared_lock guard(lock_);
  return count_pages(*map_, IpaRange{Ipa(0), map_->space().size()});
}

std::vector<stage2::MappedRange> GuestPhysical::mapped_ranges(IpaRange range) const {
  std::shared_lock guard(lock_);
  return map_->mapped_ranges(range);
}

}  // namespace hvmm::vmm
