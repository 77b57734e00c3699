// VmidAllocator: stage-2 VMIDs handed out by generation, like arm64 KVM's vmid allocator.
//
// A VMID tags every stage-2 TLB entry of one VM (Stage2Tlb). There are few of them (255 with
// 8 bits, 65535 with 16; VMID 0 is reserved and never handed out), so they are recycled by
// generation rather than freed one by one:
// - Each VM holds a VmVmid: one atomic 64-bit {generation, vmid}. The generation lives in the
//   bits above the VMID width.
// - A VM is "running" on a slot (a vCPU thread, a VM process being scheduled) between
//   activate(vm, slot) and deactivate(slot). activate() is lock-free when the VM's VMID is of
//   the current generation: it only swaps the slot's active value.
// - When the VMID space of a generation is used up, rollover bumps the generation, keeps the
//   VMID of every running slot (reserved for it) and calls the flush callback exactly once,
//   so no TLB entry tagged with a recycled VMID survives. A VM that was not running gets a new
//   VMID the next time it is activated.
// - If every VMID is held by a running slot after rollover, activate() fails with
//   kResourceExhausted naming the VMID width: more VMs run than VMIDs exist.
// Thread-safety: every member is safe to call concurrently, but one slot must not be activated
// by two threads at once (slots are like CPUs in KVM: each is owned by one thread at a time).
// The algorithm is hvmm::GenerationAllocator (hvmm/base/generation_allocator.h, shared with the
// guest kernel's ASIDs); this class adds the mutex, the flush callback and the errors.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "hvmm/base/generation_allocator.h"
#include "hvmm/base/result.h"

namespace hvmm::stage2 {

// VmVmid is one VM's {generation, vmid}, updated by the allocator. Zero means "never assigned".
class VmVmid {
 public:
  VmVmid() = default;
  VmVmid(const VmVmid&) = delete;
  VmVmid& operator=(const VmVmid&) = delete;

  // The raw {generation, vmid} value; 0 before the first activation.
  uint64_t raw() const { return id_.load(std::memory_order_relaxed); }

 private:
  friend class VmidAllocator;
  std::atomic<uint64_t> id_{0};
};

// Options an allocator is created with.
struct VmidAllocatorOptions {
  // VMID width: 8 (VTCR_EL2.VS = 0) or 16 (VS = 1). Widths 2..16 are accepted so tests can
  // roll over quickly.
  unsigned vmid_bits = 8;
  // Number of slots VMs can run on at once (vCPU threads or VM processes), at most
  // VmidAllocator::kMaxRunningSlots.
  unsigned running_slots = 64;
};

class VmidAllocator {
 public:
  static constexpr unsigned kMinBits = 2;
  static constexpr unsigned kMaxBits = 16;
  static constexpr unsigned kMaxRunningSlots = 1024;

  // Called once per rollover, under the allocator's lock: flush every stage-2 TLB entry.
  using FlushCallback = std::function<void()>;

  // Make an allocator, or fail naming the bad width or slot count.
  static Result<std::unique_ptr<VmidAllocator>> create(VmidAllocatorOptions options,
                                                       FlushCallback flush_all);
  VmidAllocator(const VmidAllocator&) = delete;
  VmidAllocator& operator=(const VmidAllocator&) = delete;

  // Mark `vm` as running on `slot` and return its VMID, assigning a new one when its
  // generation is stale. Fails when `slot` is out of range or when every VMID is held by
  // another running slot.
  Result<uint16_t> activate(VmVmid& vm, unsigned slot);
  // Mark `slot` as running nothing: its VMID is no longer reserved at the next rollover.
  void deactivate(unsigned slot);

  // VMID part of a {generation, vmid} value.
  uint16_t vmid_of(uint64_t raw) const { return static_cast<uint16_t>(ids_.id_of(raw)); }
  // Generation part of a {generation, vmid} value (counts from 1).
  uint64_t generation_of(uint64_t raw) const { return ids_.generation_of(raw); }
  // The current generation.
  uint64_t generation() const { return ids_.generation_of(ids_.current()); }
  // Number of rollovers so far.
  uint64_t rollovers() const { return generation() - 1; }
  unsigned vmid_bits() const { return ids_.bits(); }
  unsigned running_slots() const { return ids_.slots(); }
  // VMIDs a generation can hand out (VMID 0 excluded).
  unsigned usable_vmids() const { return static_cast<unsigned>(ids_.usable_ids()); }

 private:
  VmidAllocator(VmidAllocatorOptions options, FlushCallback flush_all);

  FlushCallback flush_all_;
  std::mutex mutex_;  // serializes the slow path (GenerationAllocator::assign)
  GenerationAllocator<kMaxBits, kMaxRunningSlots> ids_;
};

}  // namespace hvmm::stage2
