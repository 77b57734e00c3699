// Stage-1 TLB maintenance across CPUs: local flushes (INVLPG, PCID-aware CR3 reloads,
// CR4.PGE toggles) and shootdowns by IPI, acknowledged by every target. Range flushes fall
// back to a full flush above kTlbFlushCeiling pages; CPUs in lazy-TLB mode are skipped
// unless page tables were freed; per-address-space generations make CPUs that were skipped
// (not running the address space, or lazy) flush when they next switch to it. Every CPU
// records the last user-range request it carried out (TlbFlushRecord), so a test can check
// that a remote CPU flushed a given range for a given generation itself.
#pragma once

#include <cstdint>

namespace hvmm::guest {

struct UserMm;

// Single-page flushes above this count become one full flush (Linux uses 33).
inline constexpr uint64_t kTlbFlushCeiling = 33;

// Counters of the shootdown machinery (all CPUs).
struct TlbStats {
  uint64_t shootdowns = 0;         // flush requests that needed other CPUs
  uint64_t ipis = 0;               // IPIs sent
  uint64_t page_flushes = 0;       // INVLPGs executed (all CPUs)
  uint64_t full_flushes = 0;       // whole-PCID or whole-TLB flushes (all CPUs)
  uint64_t lazy_skipped = 0;       // targets skipped because they were in lazy-TLB mode
  uint64_t latency_tsc_total = 0;  // IPI send → last acknowledgement
  uint64_t latency_tsc_max = 0;
};

// What one CPU last did for a user-range flush request (its own or another CPU's): the
// request's address space, generation and range, and how the CPU carried it out. Four
// words and a kind per CPU, written by that CPU only, inside the shootdown handler.
struct TlbFlushRecord {
  enum Kind : uint32_t {
    kNone,        // no user-range request carried out yet
    kPages,       // one INVLPG per page of [start, end)
    kWholeAsid,   // the range was above kTlbFlushCeiling: the whole PCID was flushed
    kLeftLazyMm,  // lazy CPU whose tables were freed: it loaded the kernel tables instead
  };
  const UserMm* mm = nullptr;
  uint64_t gen = 0;  // the value of mm->tlb_gen the request brought this CPU up to
  uint64_t start = 0, end = 0;
  Kind kind = kNone;
};

// Register the IPI handler and note whether PCIDs and INVPCID are available.
void tlb_init();

// Set CR4.PCIDE on the calling CPU when PCIDs are in use.
void cpu_enable_pcid();

// True if CR3 carries PCIDs (ASIDs) on this machine.
bool pcid_enabled();

// Invalidate kernel translations of [start, end) on every CPU (kernel mappings are global).
void tlb_flush_kernel_range(uint64_t start, uint64_t end);

// Invalidate [start, end) of `mm` on every CPU that may cache it. Call after the page-table
// change and before freeing the frames (MmuGather::release). Returns the request's
// generation (what each target's TlbFlushRecord::gen holds once it has carried it out).
uint64_t tlb_flush_mm_range(UserMm& mm, uint64_t start, uint64_t end, bool tables_freed);

// Invalidate everything (global entries and all PCIDs) on the calling CPU only.
void tlb_flush_all_local();

// Invalidate everything (global entries and all PCIDs) on every CPU.
void tlb_flush_everything();

// Handle a shootdown request addressed to this CPU, if any (also used while spinning).
void tlb_service_pending();

// Test knob: when set, shootdowns flush only the calling CPU (no IPIs). Lets a selftest
// show that a stale translation on another CPU is caught.
void tlb_set_skip_remote(bool skip);

// A copy of CPU `cpu`'s flush record; read it after the shootdown it should show returned.
TlbFlushRecord tlb_last_flush(unsigned cpu);

// A snapshot of the counters.
TlbStats tlb_stats();

}  // namespace hvmm::guest
