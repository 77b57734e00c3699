// GuestPhysical's controls from outside: range checks, stage-2 TLB invalidation, KVM's
// translations dropped without losing contents, and aging.
//
// Why drop_kvm_translations() does not hold the map lock across the zap: madvise(DONTNEED)
// on the primary mapping raises a userfaultfd REMOVE event and waits until the handler has
// read it. The handler may be inside classify(), waiting for the lock exclusively; a zap
// holding it shared would then wait for the handler and the handler for the zap. Without the
// lock a concurrent change is harmless: a punch (balloon, reclaim commit) removes the page
// whatever the zap did, a fill (UFFDIO_COPY/ZEROPAGE) installs a page the zap may unmap
// again (it stays in the memfd: the next touch is a minor fault), and a layout change
// leaves the primary mapping in place (its pages are punched). What the zap must not race
// is an open reclaim window, whose write protection lives in the primary mapping's entries:
// the Machine serializes it with the reclaim engine's epochs (machine_controls.cc).
#include <mutex>

#include "hvmm/vmm/memory/guest_physical.h"

namespace hvmm::vmm {

// Alignment first (what a client most often gets wrong), then emptiness, overflow, bounds.
Result<void> GuestPhysical::check_control_range(IpaRange range) const {
  if (!range.start.is_aligned(kPageSize) || !is_aligned(range.size, kPageSize))
    return make_error(ErrorCode::kInvalidArgument, "range: {} is not page aligned", range);
  if (range.empty())
    return make_error(ErrorCode::kInvalidArgument, "range: empty at {:#x}", range.start.value());
  if (range.overflows())
    return make_error(ErrorCode::kInvalidArgument,
                      "range: [{:#x}, +{:#x}) overflows the 64-bit address space",
                      range.start.value(), range.size);
  if (!map_->space().contains(range))
    return make_error(ErrorCode::kOutOfRange,
                      "range: {} is outside the {}-bit IPA space (0x0-{:#x})", range,
                      map_->space().ipa_bits(), map_->space().size());
  return Ok();
}

// The translator's VMID, which follows a rollover.
uint64_t GuestPhysical::invalidate_tlb(IpaRange range) {
  return tlb_.invalidate_range(translator_->vmid(), range);
}

uint64_t GuestPhysical::flush_tlb() {
  return tlb_.invalidate_all();
}

// The RAM parts (host-contiguous) under the shared lock, then the zaps without it.
Result<uint64_t> GuestPhysical::drop_kvm_translations(IpaRange range) {
  std::vector<WindowRun> parts;
  {
    std::shared_lock guard(lock_);
    for (const RamRegion& region : ram_) {
      const Ipa lo = std::max(range.start, region.range.start);
      const Ipa hi = std::min(range.end(), region.range.end());
      if (lo < hi)
        parts.push_back(
            WindowRun{IpaRange{lo, hi - lo}, region.offset + (lo - region.range.start)});
    }
  }
  uint64_t pages = 0;
  for (const WindowRun& part : parts) {
    if (auto zapped = memory_->zap_primary(part.offset, part.range.size); !zapped)
      return make_error(zapped.error().code, "dropping KVM's translations of {}: {}", part.range,
                        zapped.error().message);
    pages += part.range.size / kPageSize;
  }
  return pages;
}

// Counted before the clear (clear_young leaves nothing to count); test_young only reads the
// flags, so the shared lock does.
GuestPhysical::Aging GuestPhysical::age(IpaRange range, bool clear) {
  auto count = [&] {
    uint64_t pages = 0;
    map_->walk_leaves(range, [&](IpaRange part, HostOffset, unsigned, stage2::Descriptor leaf) {
      if (leaf.valid() && leaf.young())
        pages += part.size / kPageSize;
    });
    return pages;
  };
  Aging aging;
  if (clear) {
    std::unique_lock guard(lock_);
    aging.young_pages = count();
    aging.young = stage2::clear_young(*map_, notifiers_, range);
  } else {
    std::shared_lock guard(lock_);
    aging.young_pages = count();
    aging.young = stage2::test_young(*map_, notifiers_, range);
  }
  return aging;
}

}  // namespace hvmm::vmm
