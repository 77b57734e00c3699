// Realization of the stage-2 map as KVM memslots, and release of dropped backing.
#include "hvmm/vmm/memory/memslot_sync.h"

#include <algorithm>

namespace hvmm::vmm {
namespace {

using stage2::Backing;
using stage2::MappedRange;

// True when `next` continues `run` in IPA, host offset and kind.
bool extends(const Memslot& run, const MappedRange& next, bool read_only) {
  return run.range.end() == next.range.start && run.offset + run.range.size == next.output &&
         run.read_only == read_only;
}

}  // namespace

// Merge the map's resident runs that are contiguous in IPA and output into slots.
std::vector<Memslot> MemslotSync::desired_slots() const {
  std::vector<Memslot> slots;
  IpaRange whole{Ipa(0), map_.space().size()};
  for (const MappedRange& run : map_.mapped_ranges(whole)) {
    if (run.state.backing != Backing::kResident) {
      continue;
    }
    bool read_only = !stage2::allows_write(run.attributes.permissions);
    if (!slots.empty() && extends(slots.back(), run, read_only)) {
      slots.back().range.size += run.range.size;
    } else {
      slots.push_back(Memslot{0, run.range, run.output, read_only});
    }
  }
  return slots;
}

// The smallest slot id not in use.
uint32_t MemslotSync::next_free_slot() const {
  uint32_t id = 0;
  while (std::any_of(slots_.begin(), slots_.end(),
                     [id](const Memslot& slot) { return slot.slot == id; })) {
    ++id;
  }
  return id;
}

// Delete the slots the map no longer implies, then add the new ones (KVM forbids overlap).
Result<void> MemslotSync::sync() {
  std::vector<Memslot> wanted = desired_slots();
  auto wanted_has = [&](const Memslot& slot) {
    return std::any_of(wanted.begin(), wanted.end(),
                       [&](const Memslot& w) { return w.same_placement(slot); });
  };
  for (auto it = slots_.begin(); it != slots_.end();) {
    if (wanted_has(*it)) {
      ++it;
      continue;
    }
    Memslot removal = *it;
    removal.range.size = 0;
    HVMM_TRY(sink_.set_memslot(removal, nullptr));
    it = slots_.erase(it);
  }
  for (Memslot slot : wanted) {
    bool present = std::any_of(slots_.begin(), slots_.end(),
                               [&](const Memslot& s) { return s.same_placement(slot); });
    if (present) {
      continue;
    }
    auto host = memory_.host_pointer(slot.offset, slot.range.size);
    HVMM_TRY(host);
    slot.slot = next_free_slot();
    HVMM_TRY(sink_.set_memslot(slot, *host));
    slots_.push_back(slot);
  }
  std::sort(slots_.begin(), slots_.end(),
            [](const Memslot& a, const Memslot& b) { return a.range.start < b.range.start; });
  return Ok();
}

// Remember which parts of the changing range are resident before the descriptors change.
void MemslotSync::range_start(const stage2::Change& change) {
  pending_.clear();
  if (change.kind != stage2::ChangeKind::kUnmap && change.kind != stage2::ChangeKind::kPageState) {
    return;
  }
  map_.walk_leaves(change.range, [&](IpaRange part, HostOffset output, unsigned /*level*/,
                                     stage2::Descriptor /*leaf*/) {
    auto translation = map_.translate(part.start);
    if (translation && translation->state.backing == Backing::kResident) {
      pending_.push_back(ResidentPart{part.start, output, part.size});
    }
  });
}

// Bring the memslots in line with the updated map, then release what stopped being resident.
void MemslotSync::range_updated(const stage2::Change& change) {
  if (change.kind == stage2::ChangeKind::kAge) {
    return;
  }
  note(sync());
  note(release_dropped());
}

// Release the host backing of parts that are no longer resident.
Result<void> MemslotSync::release_dropped() {
  std::vector<ResidentPart> parts;
  parts.swap(pending_);
  for (const ResidentPart& part : parts) {
    auto now = map_.translate(part.ipa);
    if (now && now->state.backing == Backing::kResident) {
      continue;
    }
    HVMM_TRY(memory_.release(part.output, part.size));
  }
  return Ok();
}

// Keep the first hook failure for the owner to report.
void MemslotSync::note(Result<void> result) {
  if (!result.ok() && !hook_error_) {
    hook_error_ = result.error();
  }
}

}  // namespace hvmm::vmm
