// VmidAllocator: generation-based VMID recycling (see vmid_allocator.h for the contract).
//
// The scheme follows arm64 KVM's VMID allocator (arch/arm64/kvm/vmid.c) and the ASID
// allocator it derives from: a lock-free fast path that swaps a slot's active value when the
// VM's generation is current, and a locked slow path that allocates, or rolls over.
#include "hvmm/stage2/vmid_allocator.h"

#include <utility>

namespace hvmm::stage2 {

namespace {

// The active value of a slot running nothing: a non-zero value whose VMID part is 0, so a
// rollover reserves nothing for it and the fast path may still replace it.
uint64_t idle_value(unsigned bits) {
  return uint64_t{1} << bits;
}

}  // namespace

// Validate the options before building, so a bad width is an Error, not an assert.
Result<std::unique_ptr<VmidAllocator>> VmidAllocator::create(VmidAllocatorOptions options,
                                                             FlushCallback flush_all) {
  if (options.vmid_bits < kMinBits || options.vmid_bits > kMaxBits) {
    return make_error(ErrorCode::kInvalidArgument,
                      "VMID width of {} bits is not supported: it must be {} to {} bits",
                      options.vmid_bits, kMinBits, kMaxBits);
  }
  if (options.running_slots == 0) {
    return make_error(ErrorCode::kInvalidArgument, "a VMID allocator needs at least one slot");
  }
  if (!flush_all) {
    return make_error(ErrorCode::kInvalidArgument, "a VMID allocator needs a flush callback");
  }
  return std::unique_ptr<VmidAllocator>(new VmidAllocator(options, std::move(flush_all)));
}

// Generation 1 starts with every VMID free except 0, and every slot idle.
VmidAllocator::VmidAllocator(VmidAllocatorOptions options, FlushCallback flush_all)
    : bits_(options.vmid_bits),
      vmid_mask_((uint64_t{1} << options.vmid_bits) - 1),
      flush_all_(std::move(flush_all)),
      generation_(uint64_t{1} << options.vmid_bits),
      active_(options.running_slots),
      reserved_(options.running_slots, 0),
      used_(vmid_mask_ + 1, false) {
  for (auto& active : active_)
    active.store(idle_value(bits_), std::memory_order_relaxed);
  used_[0] = true;
}

// True when `raw` carries the current generation.
bool VmidAllocator::generation_matches(uint64_t raw) const {
  return ((raw ^ generation_.load(std::memory_order_relaxed)) >> bits_) == 0;
}

// Fast path: the VM's generation is current and the slot was not cleared by a concurrent
// rollover (the compare-exchange fails if it was), so the VMID stays valid. Otherwise take
// the lock, re-check, and allocate.
Result<uint16_t> VmidAllocator::activate(VmVmid& vm, unsigned slot) {
  if (slot >= active_.size()) {
    return make_error(ErrorCode::kOutOfRange, "VMID slot {} is out of range: {} slots exist", slot,
                      active_.size());
  }
  uint64_t raw = vm.id_.load(std::memory_order_relaxed);
  uint64_t old_active = active_[slot].load(std::memory_order_relaxed);
  if (old_active != 0 && raw != 0 && generation_matches(raw) &&
      active_[slot].compare_exchange_strong(old_active, raw, std::memory_order_relaxed)) {
    return vmid_of(raw);
  }
  std::lock_guard lock(mutex_);
  raw = vm.id_.load(std::memory_order_relaxed);
  if (raw == 0 || !generation_matches(raw)) {
    auto fresh = new_vmid(raw);
    if (!fresh.ok())
      return fresh.error();
    raw = *fresh;
    vm.id_.store(raw, std::memory_order_relaxed);
  }
  active_[slot].store(raw, std::memory_order_relaxed);
  return vmid_of(raw);
}

// The slot runs nothing from now on, so its VMID will not be reserved at the next rollover.
void VmidAllocator::deactivate(unsigned slot) {
  if (slot < active_.size())
    active_[slot].store(idle_value(bits_), std::memory_order_relaxed);
}

// Give the VM a VMID of the current generation: its old VMID when it was reserved across a
// rollover or is still free, else a free one, rolling over when none is left. Runs locked.
Result<uint64_t> VmidAllocator::new_vmid(uint64_t old_raw) {
  const uint64_t generation = generation_.load(std::memory_order_relaxed);
  if (old_raw != 0) {
    const uint64_t renewed = generation | vmid_of(old_raw);
    if (update_reserved(old_raw, renewed))
      return renewed;
    if (!used_[vmid_of(old_raw)]) {
      used_[vmid_of(old_raw)] = true;
      return renewed;
    }
  }
  if (uint64_t fresh = allocate_free(generation); fresh != 0)
    return fresh;
  rollover();
  if (uint64_t fresh = allocate_free(generation_.load(std::memory_order_relaxed)); fresh != 0)
    return fresh;
  return make_error(ErrorCode::kResourceExhausted,
                    "no free VMID: all {} VMIDs of the {}-bit VMID space are held by running "
                    "VMs ({} slots); use 16-bit VMIDs or run fewer VMs at once",
                    usable_vmids(), bits_, active_.size());
}

// A VM whose VMID was reserved across a rollover keeps it: every slot that reserved the old
// value is updated to the new generation (a VM may run on several slots).
bool VmidAllocator::update_reserved(uint64_t old_raw, uint64_t new_raw) {
  bool hit = false;
  for (auto& reserved : reserved_) {
    if (reserved == old_raw) {
      reserved = new_raw;
      hit = true;
    }
  }
  return hit;
}

// Take the next free VMID of this generation, searching from where the last search ended.
// Returns the {generation, vmid} value, or 0 when the generation is used up.
uint64_t VmidAllocator::allocate_free(uint64_t generation) {
  const uint64_t count = vmid_mask_ + 1;
  for (uint64_t step = 0; step < count; ++step) {
    const uint64_t vmid = (next_search_ + step) & vmid_mask_;
    if (!used_[vmid]) {
      used_[vmid] = true;
      next_search_ = vmid + 1;
      return generation | vmid;
    }
  }
  return 0;
}

// Start a new generation: free every VMID except those of running slots, which are reserved
// (a slot cleared to 0 by an earlier rollover that has not been activated since still runs
// its reserved VMID), then flush every TLB entry once. Runs locked.
void VmidAllocator::rollover() {
  generation_.fetch_add(uint64_t{1} << bits_, std::memory_order_relaxed);
  used_.assign(used_.size(), false);
  used_[0] = true;
  for (size_t slot = 0; slot < active_.size(); ++slot) {
    uint64_t running = active_[slot].exchange(0, std::memory_order_relaxed);
    if (running == 0)
      running = reserved_[slot];
    if (vmid_of(running) == 0)
      running = 0;  // idle slot: nothing to reserve
    reserved_[slot] = running;
    if (running != 0)
      used_[vmid_of(running)] = true;
  }
  next_search_ = 1;
  flush_all_();
}

}  // namespace hvmm::stage2
