// VmidAllocator: generation-based VMID recycling (see vmid_allocator.h for the contract).
//
// The scheme follows arm64 KVM's VMID allocator (arch/arm64/kvm/vmid.c) and the ASID
// allocator it derives from: a lock-free fast path that swaps a slot's active value when the
// VM's generation is current, and a locked slow path that allocates, or rolls over.
#include "hvmm/stage2/vmid_allocator.h"

#include <utility>

namespace hvmm::stage2 {

// Validate the options before building, so a bad width is an Error, not an assert.
Result<std::unique_ptr<VmidAllocator>> VmidAllocator::create(VmidAllocatorOptions options,
                                                             FlushCallback flush_all) {
  if (options.vmid_bits < kMinBits || options.vmid_bits > kMaxBits) {
    return make_error(ErrorCode::kInvalidArgument,
                      "VMID width of {} bits is not supported: it must be {} to {} bits",
                      options.vmid_bits, kMinBits, kMaxBits);
  }
  if (options.running_slots == 0 || options.running_slots > kMaxRunningSlots) {
    return make_error(ErrorCode::kInvalidArgument, "a VMID allocator needs 1 to {} slots, not {}",
                      kMaxRunningSlots, options.running_slots);
  }
  if (!flush_all) {
    return make_error(ErrorCode::kInvalidArgument, "a VMID allocator needs a flush callback");
  }
  return std::unique_ptr<VmidAllocator>(new VmidAllocator(options, std::move(flush_all)));
}

// Generation 1 starts with every VMID free except 0, and every slot idle (so a first
// activation of a current VM may take the fast path).
VmidAllocator::VmidAllocator(VmidAllocatorOptions options, FlushCallback flush_all)
    : flush_all_(std::move(flush_all)) {
  (void)ids_.init(options.vmid_bits, options.running_slots);  // validated by create()
  for (unsigned slot = 0; slot < options.running_slots; ++slot) {
    ids_.deactivate(slot);
  }
}

// Fast path without the lock when the VM's generation is current; otherwise assign under the
// mutex, flushing every stage-2 TLB entry once when that rolled over.
Result<uint16_t> VmidAllocator::activate(VmVmid& vm, unsigned slot) {
  if (slot >= ids_.slots()) {
    return make_error(ErrorCode::kOutOfRange, "VMID slot {} is out of range: {} slots exist", slot,
                      ids_.slots());
  }
  const uint64_t raw = vm.id_.load(std::memory_order_relaxed);
  if (ids_.try_fast(raw, slot)) {
    return vmid_of(raw);
  }
  std::lock_guard lock(mutex_);
  const GenerationAssignment assigned = ids_.assign(lock, vm.id_, slot);
  if (assigned.rolled_over) {
    flush_all_();
  }
  if (assigned.value == 0) {
    return make_error(ErrorCode::kResourceExhausted,
                      "no free VMID: all {} VMIDs of the {}-bit VMID space are held by running "
                      "VMs ({} slots); use 16-bit VMIDs or run fewer VMs at once",
                      usable_vmids(), vmid_bits(), running_slots());
  }
  return vmid_of(assigned.value);
}

// The slot runs nothing from now on, so its VMID will not be reserved at the next rollover.
void VmidAllocator::deactivate(unsigned slot) {
  if (slot < ids_.slots()) {
    ids_.deactivate(slot);
  }
}

}  // namespace hvmm::stage2
