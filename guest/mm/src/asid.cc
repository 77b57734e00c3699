// Generation-based ASID (PCID) allocation (see asid.h): GenerationAllocator under a spinlock.
#include "hvmm/guest/mm/asid.h"

namespace hvmm::guest::mm {

// Start at generation 1 with every ASID free except 0, one slot per possible CPU.
bool AsidAllocator::init(unsigned bits) {
  return ids_.init(bits, kMaxCpus);
}

// Fast path without the lock when the context is current and this CPU was not reset by a
// rollover; otherwise (re)assign under the lock and report a pending flush.
AsidSwitch AsidAllocator::switch_to(AsidContext& ctx, unsigned cpu) {
  const uint64_t id = ctx.id.load(std::memory_order_relaxed);
  if (ids_.try_fast(id, cpu)) {
    fast_switches_.fetch_add(1, std::memory_order_relaxed);
    return AsidSwitch{asid_of(id), false};
  }
  SpinGuard guard(lock_);
  const GenerationAssignment assigned = ids_.assign(guard, ctx.id, cpu);
  if (assigned.value == 0) {
    arch::mm_panic("asid: more live address spaces than ASIDs");
  }
  allocations_ += assigned.fresh ? 1 : 0;
  rollovers_ += assigned.rolled_over ? 1 : 0;
  ++slow_switches_;
  return AsidSwitch{asid_of(assigned.value), assigned.flush};
}

// A snapshot of the counters.
AsidStats AsidAllocator::stats() const {
  return AsidStats{fast_switches_.load(std::memory_order_relaxed), slow_switches_, allocations_,
                   rollovers_};
}

}  // namespace hvmm::guest::mm
