// TLB shootdown. One request is in flight at a time (g_request under g_lock); the initiator
// marks each target's pending flag, sends it an IPI and spins until every flag is cleared.
// Every waiter services its own pending flag while spinning, so two CPUs that flush at the
// same time cannot deadlock even with interrupts off. Each CPU keeps a one-entry record
// of the last user-range request it carried out, so a test can tell that the remote CPU
// itself flushed the page (an acknowledgement or an IPI count alone does not show that).
#include "hvmm/guest/tlb.h"

#include "hvmm/guest/arch/apic.h"
#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/arch/trap.h"
#include "hvmm/guest/cmdline.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/mm/spinlock.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/process.h"
#include "hvmm/guest/smp.h"

namespace hvmm::guest {
namespace {

constexpr uint64_t kCr4Pge = 1u << 7;
constexpr uint64_t kCr4Pcide = 1u << 17;
constexpr uint64_t kCr3NoFlush = 1ull << 63;

// What a shootdown asks every target to do.
struct TlbRequest {
  enum Kind { kKernelRange, kMmRange, kEverything } kind;
  UserMm* mm;
  uint64_t start, end;
  uint64_t gen;  // mm->tlb_gen this request brings targets up to
  bool tables_freed;
};

uint32_t g_lock;  // 0 free, 1 held
TlbRequest g_request;
volatile uint32_t g_pending[kMaxCpus];
bool g_pcid = false;
bool g_skip_remote = false;
bool g_ready = false;
TlbStats g_stats;
TlbFlushRecord g_last_flush[kMaxCpus];  // written only by the CPU it belongs to

// Count with an atomic add (counters are shared by all CPUs).
void count(uint64_t& counter, uint64_t n = 1) {
  __atomic_fetch_add(&counter, n, __ATOMIC_RELAXED);
}

// Flush everything on this CPU, global entries and all PCIDs included.
void flush_everything_local() {
  uint64_t cr4 = arch::read_cr4();
  arch::write_cr4(cr4 & ~kCr4Pge);
  arch::write_cr4(cr4);
  count(g_stats.full_flushes);
}

// Flush the whole current address space (its PCID) on this CPU.
void flush_current_pcid() {
  arch::write_cr3(this_cpu().loaded_cr3 & ~kCr3NoFlush);
  count(g_stats.full_flushes);
}

// Flush [start, end) page by page, or fall back to `full` above the ceiling; returns how.
TlbFlushRecord::Kind flush_range_local(uint64_t start, uint64_t end, void (*full)()) {
  uint64_t pages = (end - start + kPageSize - 1) >> kPageShift;
  if (pages > kTlbFlushCeiling) {
    full();
    return TlbFlushRecord::kWholeAsid;
  }
  for (uint64_t va = start; va < end; va += kPageSize)
    arch::invlpg(va);
  count(g_stats.page_flushes, pages);
  return TlbFlushRecord::kPages;
}

// Note on the calling CPU what it did for the user-range request `req` (five stores: this
// runs in every shootdown handler, and ring-0 instructions are emulated one by one on PVM).
void record_flush(const PerCpu& me, const TlbRequest& req, TlbFlushRecord::Kind kind) {
  g_last_flush[me.cpu] = {req.mm, req.gen, req.start, req.end, kind};
}

// Leave a user address space whose tables were freed while this CPU was lazy.
void leave_lazy_mm() {
  arch::write_cr3(kmem().kernel_pt.root().value());
  this_cpu().loaded_cr3 = kmem().kernel_pt.root().value();
  this_cpu().loaded_mm = nullptr;
  count(g_stats.full_flushes);
}

// Carry out a request on the calling CPU.
void do_local(const TlbRequest& req) {
  PerCpu& me = this_cpu();
  switch (req.kind) {
    case TlbRequest::kEverything:
      return flush_everything_local();
    case TlbRequest::kKernelRange:
      flush_range_local(req.start, req.end, flush_everything_local);
      return;
    case TlbRequest::kMmRange:
      if (me.loaded_mm != req.mm)
        return;  // caught up by generation on the next switch
      if (me.lazy_tlb) {
        if (req.tables_freed) {
          leave_lazy_mm();
          record_flush(me, req, TlbFlushRecord::kLeftLazyMm);
        }
        return;
      }
      record_flush(me, req, flush_range_local(req.start, req.end, flush_current_pcid));
      req.mm->flushed_gen[me.cpu] = req.gen;
      ++me.tlb_remote_flushes;
      return;
  }
}

// True if CPU `cpu` must receive `req`.
bool is_target(unsigned cpu, const TlbRequest& req) {
  if (req.kind != TlbRequest::kMmRange)
    return true;
  PerCpu& c = cpu_data(cpu);
  if (c.loaded_mm != req.mm)
    return false;
  if (c.lazy_tlb && !req.tables_freed) {
    count(g_stats.lazy_skipped);
    return false;
  }
  return true;
}

// Take the shootdown lock, serving requests addressed to us while waiting.
void lock_shootdown() {
  while (__atomic_exchange_n(&g_lock, 1u, __ATOMIC_ACQUIRE) != 0) {
    tlb_service_pending();
    arch::pause();
  }
}

// Flush locally, then send `req` to every other target CPU and wait for all of them.
void shootdown(const TlbRequest& req) {
  lock_shootdown();
  g_request = req;
  unsigned self = this_cpu().cpu;
  unsigned sent = 0;
  uint64_t t0 = arch::rdtsc();
  for (unsigned cpu = 0; cpu < possible_cpus() && !g_skip_remote; ++cpu) {
    if (cpu == self || !cpu_data(cpu).online || !is_target(cpu, req))
      continue;
    __atomic_store_n(&g_pending[cpu], 1u, __ATOMIC_RELEASE);
    arch::apic_send_ipi(cpu_apic_id(cpu), arch::kVectorTlbShootdown);
    ++sent;
  }
  do_local(req);
  for (unsigned cpu = 0; cpu < possible_cpus() && sent != 0; ++cpu)
    while (__atomic_load_n(&g_pending[cpu], __ATOMIC_ACQUIRE) != 0)
      arch::pause();
  if (sent != 0) {
    uint64_t dt = arch::rdtsc() - t0;
    count(g_stats.shootdowns);
    count(g_stats.ipis, sent);
    count(g_stats.latency_tsc_total, dt);
    if (dt > g_stats.latency_tsc_max)
      g_stats.latency_tsc_max = dt;
  }
  __atomic_store_n(&g_lock, 0u, __ATOMIC_RELEASE);
}

// The shootdown IPI: serve the request, then EOI.
void tlb_ipi(TrapFrame&) {
  tlb_service_pending();
  arch::apic_eoi();
}

// The call-function IPI only wakes the idle loop.
void wake_ipi(TrapFrame&) {
  arch::apic_eoi();
}

}  // namespace

// Register IPI handlers and decide on PCIDs (CPUID.1:ECX bit 17; `nopcid` disables).
void tlb_init() {
  arch::set_interrupt_handler(arch::kVectorTlbShootdown, tlb_ipi);
  arch::set_interrupt_handler(arch::kVectorCallFunction, wake_ipi);
  g_pcid = (arch::cpuid(1).ecx & (1u << 17)) != 0 && !cmdline_has("nopcid");
  __atomic_store_n(&g_ready, true, __ATOMIC_RELEASE);
}

// Set CR4.PCIDE (CR3's PCID field must be 0 at this point: the kernel uses PCID 0).
void cpu_enable_pcid() {
  if (g_pcid)
    arch::write_cr4(arch::read_cr4() | kCr4Pcide);
}

// Whether CR3 carries PCIDs.
bool pcid_enabled() {
  return g_pcid;
}

// Serve this CPU's pending request (nothing before tlb_init(): GS may not be set yet).
void tlb_service_pending() {
  if (!__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE))
    return;
  // Interrupts off: the IPI handler must not serve and acknowledge the request under us,
  // or our late acknowledgement could swallow the next request.
  uint64_t flags = arch::irq_save();
  unsigned self = this_cpu().cpu;
  if (__atomic_load_n(&g_pending[self], __ATOMIC_ACQUIRE) != 0) {
    do_local(g_request);
    __atomic_store_n(&g_pending[self], 0u, __ATOMIC_RELEASE);
  }
  arch::irq_restore(flags);
}

// Kernel mappings are global and shared: every online CPU is a target.
void tlb_flush_kernel_range(uint64_t start, uint64_t end) {
  shootdown({TlbRequest::kKernelRange, nullptr, start, end, 0, false});
}

// Bump the generation first: CPUs not reached catch up when they next load `mm`.
uint64_t tlb_flush_mm_range(UserMm& mm, uint64_t start, uint64_t end, bool tables_freed) {
  uint64_t gen = __atomic_add_fetch(&mm.tlb_gen, 1, __ATOMIC_SEQ_CST);
  shootdown({TlbRequest::kMmRange, &mm, start, end, gen, tables_freed});
  return gen;
}

// Drop every translation on this CPU.
void tlb_flush_all_local() {
  flush_everything_local();
}

// Drop every translation on every CPU.
void tlb_flush_everything() {
  shootdown({TlbRequest::kEverything, nullptr, 0, 0, 0, false});
}

// Test knob (see tlb.h).
void tlb_set_skip_remote(bool skip) {
  g_skip_remote = skip;
}

// Copy of CPU `cpu`'s record (complete once the shootdown that wrote it has returned: the
// target writes it before it releases its pending flag).
TlbFlushRecord tlb_last_flush(unsigned cpu) {
  return g_last_flush[cpu];
}

// Snapshot of the counters.
TlbStats tlb_stats() {
  return g_stats;
}

}  // namespace hvmm::guest
