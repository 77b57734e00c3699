// AsidAllocator: PCIDs handed out as ASIDs with generations (the arm64 Linux scheme).
//
// A context id is (generation << asid_bits) | asid. Switching to an address space whose
// id carries the current generation keeps its ASID and needs no flush. When ASIDs run out
// the generation advances: the bitmap is cleared except for the ASIDs currently live on
// some CPU (kept, "reserved", so running processes keep theirs), and every CPU must flush
// its whole TLB once before using an ASID of the new generation. ASID 0 is never handed
// out (the kernel's own tables and CPUs without PCID use it).
#pragma once

#include <atomic>
#include <cstdint>

#include "hvmm/guest/mm/arch_hooks.h"
#include "hvmm/guest/mm/spinlock.h"

namespace hvmm::guest::mm {

// The per-address-space state: its context id (0 = never had an ASID).
struct AsidContext {
  std::atomic<uint64_t> id{0};
};

// What a switch decided.
struct AsidSwitch {
  uint16_t asid = 0;        // the PCID to load into CR3
  bool need_flush = false;  // flush this CPU's whole TLB (or load CR3 without bit 63)
};

// Counters of the allocator.
struct AsidStats {
  uint64_t fast_switches = 0;  // current generation, lock not taken
  uint64_t slow_switches = 0;
  uint64_t allocations = 0;  // new ASIDs handed out
  uint64_t rollovers = 0;    // generation changes
};

// The allocator. Constant-initialised; init() before use.
class AsidAllocator {
 public:
  static constexpr unsigned kMaxBits = 12;  // x86-64 PCIDs

  // Use ASIDs 1 .. 2^bits - 1 (bits <= kMaxBits).
  bool init(unsigned bits);
  // Pick the ASID `ctx` must use on CPU `cpu` (interrupts off, `cpu` is the caller's CPU).
  AsidSwitch switch_to(AsidContext& ctx, unsigned cpu);
  // Return the ASID part of a context id.
  uint16_t asid_of(uint64_t id) const { return static_cast<uint16_t>(id & asid_mask_); }
  uint64_t generation() const { return generation_.load(std::memory_order_relaxed); }
  AsidStats stats() const;

 private:
  uint64_t new_context(AsidContext& ctx);
  void rollover();
  bool check_update_reserved(uint64_t id, uint64_t new_id);
  bool bitmap_test_set(uint64_t asid);
  uint64_t find_free(uint64_t from) const;

  static constexpr unsigned kWords = (1u << kMaxBits) / 64;
  SpinLock lock_;
  unsigned bits_ = 0;
  uint64_t asid_mask_ = 0;
  uint64_t next_hint_ = 1;
  std::atomic<uint64_t> generation_{0};  // already shifted left by bits_
  uint64_t bitmap_[kWords] = {};
  std::atomic<uint64_t> active_[kMaxCpus] = {};
  uint64_t reserved_[kMaxCpus] = {};
  bool flush_pending_[kMaxCpus] = {};
  std::atomic<uint64_t> fast_switches_{0};
  uint64_t slow_switches_ = 0;
  uint64_t allocations_ = 0;
  uint64_t rollovers_ = 0;
};

}  // namespace hvmm::guest::mm
