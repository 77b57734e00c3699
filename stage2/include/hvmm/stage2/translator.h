// Translator: the VMM's guest-memory access path, IPA → host pointer.
//
// Devices, loaders and tools reach guest memory through a Translator: it looks the Stage2Tlb
// up first and, on a miss, walks the Stage2Map under the map's shared lock, checks that the
// page is resident, that the access is allowed and that the output lies inside the host
// backing, sets the access flag, and fills the TLB. The fill uses KVM's mmu_invalidate_seq pattern:
// the notifier sequence is read (read_begin) before the walk and re-checked (read_retry) with the
// TLB entry locked, so a walk that raced with an invalidation is returned to its caller (it was
// true when walked) but never cached.
//
// Requirements on the VMM:
// - Mutations of the map hold the lock exclusively and run with NotifierHooks (on the same
//   registry) and TlbInvalidationHooks (on the same TLB and VMID) registered, NotifierHooks
//   first. The VMM's GuestPhysical does exactly this, and today every change of guest memory
//   goes through the map, so it subscribes no TlbNotifierOps. A change that bypassed the map
//   (the backing itself) would have to go through the registry instead, with the TLB
//   subscribed by a TlbNotifierOps, or cached translations of it would go stale.
// - A thread inside a map change (between range_start and range_end) must not translate an
//   address the change covers: read_begin() would wait for the change it is part of.
// - The VMID must stay the VM's while it translates: the VM is active on a VmidAllocator slot
//   (so a rollover keeps its VMID), and set_vmid() follows any change activate() reports.
//   Otherwise the VMID could be recycled to another VM and the two would share TLB entries.
// - A returned pointer is valid for one page (or up to the end of the page); like a TLB
//   entry, it may go stale as soon as the map changes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <shared_mutex>
#include <span>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/stage2/mmu_notifier.h"
#include "hvmm/stage2/stage2_map.h"
#include "hvmm/stage2/stage2_tlb.h"

namespace hvmm::stage2 {

// The host mapping of a VM's memory backing: output addresses of the map are offsets into it.
struct HostBacking {
  std::byte* base = nullptr;  // 4 KiB aligned
  uint64_t size = 0;          // bytes
};

class Translator {
 public:
  // Make a translator for the VM with `vmid`. `map`, `map_lock`, `tlb`, `notifiers` and the
  // backing must outlive it. Fails when the backing is unaligned or the registry was released.
  static Result<Translator> create(Stage2Map& map, std::shared_mutex& map_lock, Stage2Tlb& tlb,
                                   NotifierRegistry& notifiers, uint16_t vmid, HostBacking backing);

  // Return the host address of `ipa` for `access`, or an Error naming the IPA and the reason
  // (not mapped, not resident, permission, outside the backing).
  Result<std::byte*> translate(Ipa ipa, Access access) {
    if (std::byte* host = tlb_->lookup(vmid(), ipa, access))
      return host;
    return translate_slow(ipa, access);
  }

  // Copy guest memory at [ipa, ipa + out.size()) into `out`, page by page. Every page is
  // checked before any byte is copied.
  Result<void> read(Ipa ipa, std::span<std::byte> out);
  // Copy `in` into guest memory at [ipa, ipa + in.size()), with the same checks.
  Result<void> write(Ipa ipa, std::span<const std::byte> in);

  // Test seams, never used by the VMM: run `hook` between the walk (lock released) and the
  // TLB fill, and fill without the notifier sequence check. Together they show the race the
  // check closes: a walk overtaken by an invalidation would otherwise be cached.
  void set_after_walk_hook_for_testing(std::function<void()> hook) {
    after_walk_hook_ = std::move(hook);
  }
  void disable_fill_check_for_testing() { check_fills_ = false; }

  uint16_t vmid() const { return vmid_.load(std::memory_order_relaxed); }
  // Follow the VM to a new VMID (after a VMID rollover gave it another one).
  void set_vmid(uint16_t vmid) { vmid_.store(vmid, std::memory_order_relaxed); }

  Translator(Translator&& other) noexcept;
  Translator& operator=(Translator&&) = delete;
  Translator(const Translator&) = delete;
  Translator& operator=(const Translator&) = delete;
  ~Translator() = default;

 private:
  // What a walk found: the host page and the rights a TLB entry may grant.
  struct Walked {
    std::byte* host_page;
    Access cacheable;
  };

  Translator(Stage2Map& map, std::shared_mutex& map_lock, Stage2Tlb& tlb,
             IntervalSubscription subscription, uint16_t vmid, HostBacking backing);

  Result<std::byte*> translate_slow(Ipa ipa, Access access);
  Result<Walked> walk(Ipa ipa, Access access) const;
  template <typename Copy>
  Result<void> copy(const char* verb, Ipa ipa, size_t size, Access access, Copy&& copy_chunk);

  Stage2Map* map_;
  std::shared_mutex* map_lock_;
  Stage2Tlb* tlb_;
  IntervalSubscription subscription_;  // the whole IPA space, like KVM's mmu_invalidate_seq
  std::atomic<uint16_t> vmid_;
  HostBacking backing_;
  bool check_fills_ = true;
  std::function<void()> after_walk_hook_;
};

}  // namespace hvmm::stage2
