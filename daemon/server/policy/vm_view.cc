// A VM as the host policy sees it (vm_view.h).
#include "hvmm/daemon/server/policy/vm_view.h"

#include <algorithm>

namespace hvmm::daemon::policy {
namespace {

constexpr uint64_t kPage = 4096;

// The idle estimate and its source (vm_view.h says the order).
void estimate_idle(const hvmm::v1::MemoryStats& stats, VmView& view) {
  if (stats.reclaim().enabled()) {
    const uint64_t allocated = stats.host().memfd_allocated_bytes();
    const uint64_t resident = allocated != 0 ? allocated : stats.pages().resident() * kPage;
    view.working_set_bytes = stats.working_set().estimate_bytes();
    view.idle_bytes = resident > view.working_set_bytes ? resident - view.working_set_bytes : 0;
    view.idle_source = IdleSource::kWorkingSet;
    return;
  }
  const auto& guest = stats.balloon().guest_stats();
  for (const char* tag : {"available-memory", "free-memory"}) {
    if (auto found = guest.find(tag); stats.balloon().present() && found != guest.end()) {
      view.idle_bytes = found->second;
      view.idle_source = IdleSource::kGuestStats;
      const uint64_t in_guest = view.guest_ram_bytes();
      view.working_set_bytes = in_guest > view.idle_bytes ? in_guest - view.idle_bytes : 0;
      return;
    }
  }
  view.idle_source = IdleSource::kNone;
}

}  // namespace

const char* idle_source_name(IdleSource source) {
  switch (source) {
    case IdleSource::kWorkingSet:
      return "working-set";
    case IdleSource::kGuestStats:
      return "guest-stats";
    case IdleSource::kNone:
      break;
  }
  return "none";
}

uint64_t VmView::guest_ram_bytes() const {
  const uint64_t ballooned = std::max(balloon_target_bytes, balloon_actual_bytes);
  const uint64_t out = ballooned + reclaimed_bytes;
  return memory_bytes > out ? memory_bytes - out : 0;
}

uint64_t effective_floor(const hvmm::v1::VmPolicySpec& spec, uint64_t memory_bytes) {
  return spec.floor_bytes() != 0 ? spec.floor_bytes() : memory_bytes / 4;
}

VmView make_vm_view(const std::string& name, const hvmm::v1::VmSpec& spec,
                    const hvmm::v1::MemoryStats& stats) {
  VmView view;
  view.name = name;
  view.memory_bytes = stats.memory_bytes() != 0 ? stats.memory_bytes() : spec.memory_bytes();
  view.floor_bytes = effective_floor(spec.policy(), view.memory_bytes);
  view.priority = spec.policy().priority();
  view.exempt = spec.policy().exempt();
  view.rss_bytes = stats.host().rss_bytes();
  view.balloon_present = stats.balloon().present();
  view.balloon_target_bytes = stats.balloon().target_bytes();
  view.balloon_actual_bytes = stats.balloon().actual_bytes();
  view.reclaim_available = stats.reclaim().enabled();
  view.reclaim_policy = stats.reclaim().policy();
  view.reclaimed_bytes = stats.pages().reclaimed() * kPage;
  view.footprint_bytes = stats.host().memfd_allocated_bytes() + stats.pool().compressed_bytes();
  estimate_idle(stats, view);
  return view;
}

}  // namespace hvmm::daemon::policy
