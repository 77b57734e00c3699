// DirtyRing: harvests of the per-vCPU dirty rings, and the ring-full exit.
#include "hvmm/vmm/reclaim/dirty/dirty_ring.h"

#include <algorithm>
#include <chrono>

namespace hvmm::vmm {
namespace {

// ring_full() calls in a row that find nothing to take before the ring counts as stuck.
// One empty call is a normal race (the engine harvested and reset the ring between the
// vCPU's exit and its call); several mean re-entering would only exit again.
constexpr unsigned kMaxEmptyFullExits = 8;

// Nanoseconds since `start`.
uint64_t ns_since(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
}

}  // namespace

// Each ring gets its own reader from entry 0 (KVM starts its indices at 0).
void DirtyRing::add_ring(unsigned vcpu, std::span<kvm_dirty_gfn> entries,
                         std::optional<KvmDirtyRing> owner) {
  rings_.push_back(std::make_unique<Ring>(vcpu, entries, std::move(owner)));
}

// The mapping moves into the Ring; its entries stay where they are.
void DirtyRing::add_ring(KvmDirtyRing ring) {
  const unsigned vcpu = ring.vcpu();
  const std::span<kvm_dirty_gfn> entries = ring.entries();
  add_ring(vcpu, entries, std::move(ring));
}

// Take the ring under its lock, then reset every ring (KVM resets only harvested entries).
Result<void> DirtyRing::ring_full(unsigned vcpu) {
  auto it = std::find_if(rings_.begin(), rings_.end(),
                         [vcpu](const std::unique_ptr<Ring>& r) { return r->vcpu == vcpu; });
  if (it == rings_.end()) {
    return make_error(ErrorCode::kNotFound, "dirty ring full on vCPU {}, which has no ring", vcpu);
  }
  Ring& ring = **it;
  std::vector<DirtyGfn> taken;
  {
    std::lock_guard guard(ring.lock);
    ring.reader.harvest([&](DirtyGfn gfn) { taken.push_back(gfn); });
    ring.empty_full_exits = taken.empty() ? ring.empty_full_exits + 1 : 0;
    if (ring.empty_full_exits > kMaxEmptyFullExits) {
      return make_error(ErrorCode::kInternal,
                        "dirty ring of vCPU {} stays full with no entry to harvest", vcpu);
    }
  }
  add_pending(taken);
  auto reset = reset_();
  if (!reset) {
    return make_error(reset.error().code, "dirty ring full on vCPU {}: {}", vcpu,
                      reset.error().message);
  }
  std::lock_guard guard(stats_lock_);
  ++stats_.ring_full_exits;
  return Ok();
}

// Sorting by (slot, offset) puts duplicates side by side.
void DirtyRing::add_pending(const std::vector<DirtyGfn>& taken) {
  constexpr size_t kMinCompact = 65536;
  std::lock_guard guard(pending_lock_);
  pending_.insert(pending_.end(), taken.begin(), taken.end());
  if (pending_.size() < std::max(kMinCompact, compact_at_)) {
    return;
  }
  std::sort(pending_.begin(), pending_.end(), [](const DirtyGfn& a, const DirtyGfn& b) {
    return a.slot != b.slot ? a.slot < b.slot : a.offset < b.offset;
  });
  pending_.erase(std::unique(pending_.begin(), pending_.end()), pending_.end());
  compact_at_ = 2 * pending_.size();
}

// Slot ids are looked up among the slots installed now; an entry whose slot is gone (or
// whose offset is past its end) is dropped and counted.
std::vector<uint64_t> DirtyRing::pages_of(const std::vector<DirtyGfn>& gfns) {
  std::vector<uint64_t> pages;
  pages.reserve(gfns.size());
  uint64_t unknown = 0;
  slots_.visit([&](std::span<const Memslot> slots) {
    for (const DirtyGfn& gfn : gfns) {
      auto slot = std::find_if(slots.begin(), slots.end(),
                               [&](const Memslot& s) { return s.slot == gfn.slot; });
      if (slot == slots.end() || gfn.offset >= slot->pages()) {
        ++unknown;
        continue;
      }
      pages.push_back(slot->range.start.page_number() + gfn.offset);
    }
  });
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  std::lock_guard guard(stats_lock_);
  unknown_entries_ += unknown;
  return pages;
}

// Rings first, then what ring_full() set aside, then one reset for all of it. The reset
// comes before the report, so a page written while the engine handles the report is pushed
// again and shows in the next harvest.
Result<void> DirtyRing::harvest(const std::function<void(IpaRange run)>& written) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<DirtyGfn> gfns;
  for (auto& ring : rings_) {
    std::lock_guard guard(ring->lock);
    ring->reader.harvest([&](DirtyGfn gfn) { gfns.push_back(gfn); });
  }
  {
    std::lock_guard guard(pending_lock_);
    gfns.insert(gfns.end(), pending_.begin(), pending_.end());
    pending_.clear();
    compact_at_ = 0;
  }
  Result<uint64_t> reset = reset_();
  const std::vector<uint64_t> pages = pages_of(gfns);
  for (size_t i = 0; i < pages.size();) {
    size_t end = i + 1;
    while (end < pages.size() && pages[end] == pages[end - 1] + 1) {
      ++end;
    }
    written(IpaRange{Ipa(pages[i] << kPageShift), (end - i) * kPageSize});
    i = end;
  }
  {
    std::lock_guard guard(stats_lock_);
    ++stats_.harvests;
    stats_.dirty_pages += pages.size();
    stats_.harvest_ns_total += ns_since(start);
  }
  if (!reset) {
    return make_error(reset.error().code, "dirty ring harvest: {}", reset.error().message);
  }
  return Ok();
}

// A copy under the lock.
DirtySourceStats DirtyRing::stats() const {
  std::lock_guard guard(stats_lock_);
  return stats_;
}

// Under the same lock as the stats.
uint64_t DirtyRing::unknown_entries() const {
  std::lock_guard guard(stats_lock_);
  return unknown_entries_;
}

}  // namespace hvmm::vmm
