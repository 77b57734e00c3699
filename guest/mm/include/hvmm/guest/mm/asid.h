// AsidAllocator: PCIDs handed out as ASIDs with generations (the arm64 Linux scheme).
//
// A context id is (generation << asid_bits) | asid. Switching to an address space whose
// id carries the current generation keeps its ASID and needs no flush. When ASIDs run out
// the generation advances: the bitmap is cleared except for the ASIDs currently live on
// some CPU (kept, "reserved", so running processes keep theirs), and every CPU must flush
// its whole TLB once before using an ASID of the new generation. ASID 0 is never handed
// out (the kernel's own tables and CPUs without PCID use it).
//
// The algorithm is hvmm::GenerationAllocator (hvmm/base/generation_allocator.h, shared with
// stage 2's VMIDs), with one slot per CPU; this class adds the lock, the counters and the
// panic when more address spaces are live than ASIDs exist.
#pragma once

#include <atomic>
#include <cstdint>

#include "hvmm/base/generation_allocator.h"
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
  uint16_t asid_of(uint64_t id) const { return static_cast<uint16_t>(ids_.id_of(id)); }
  // Return the current generation, shifted left by the ASID width (or-able with an ASID).
  uint64_t generation() const { return ids_.current(); }
  AsidStats stats() const;

 private:
  SpinLock lock_;  // serialises GenerationAllocator::assign
  GenerationAllocator<kMaxBits, kMaxCpus> ids_;
  std::atomic<uint64_t> fast_switches_{0};
  uint64_t slow_switches_ = 0;
  uint64_t allocations_ = 0;
  uint64_t rollovers_ = 0;
};

}  // namespace hvmm::guest::mm
