// Selftests of the CPU side: the LAPIC timer, SMP bring-up and cross-CPU work, PCID
// switches without flushes, and the TLB shootdown (the remote CPU must have recorded
// flushing the page for that request, and must not read through a stale translation; so
// the test fails when the shootdown is skipped with `tlb_skip_shootdown`).
#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/cmdline.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/probe.h"
#include "hvmm/guest/process.h"
#include "hvmm/guest/selftest.h"
#include "hvmm/guest/smp.h"
#include "hvmm/guest/time.h"
#include "hvmm/guest/timer.h"
#include "hvmm/guest/tlb.h"

extern "C" char user_tlb_reader[];

namespace hvmm::guest {
namespace {

using hvmm::kPageSize;

// How long to wait for the ring-3 reader on CPU 1 (generous: the host may be loaded).
constexpr uint64_t kReaderTimeoutUs = 10000000;

// Spin until `*counter` exceeds `target` or `us` microseconds pass; false on timeout.
bool wait_counter(const volatile uint64_t* counter, uint64_t target, uint64_t us) {
  uint64_t deadline = arch::rdtsc() + us * (tsc_hz() / 1000000);
  while (*counter <= target) {
    if (arch::rdtsc() > deadline)
      return false;
    tlb_service_pending();
    arch::pause();
  }
  return true;
}

// The timer interrupts the boot CPU at least twice within a second (100 Hz tick; the slack
// absorbs a loaded host).
bool test_timer(TestResult& r) {
  if (!timer_running())
    return r.skip("no local APIC, no timer");
  uint64_t t0 = timer_ticks();
  uint64_t deadline = arch::rdtsc() + tsc_hz();
  while (timer_ticks() < t0 + 2 && arch::rdtsc() < deadline)
    asm volatile("sti; hlt");
  if (timer_ticks() < t0 + 2)
    return r.fail("%lu ticks in 1 s", timer_ticks() - t0);
  return true;
}

// Work posted to each AP runs there (it sees its own CPU index), and every CPU's stack has
// a guard page.
void record_cpu(void* arg) {
  *static_cast<volatile unsigned*>(arg) = this_cpu().cpu;
}

// Every possible CPU is online and runs posted work.
bool test_smp(TestResult& r) {
  unsigned n = possible_cpus();
  if (online_cpus() != n)
    return r.fail("%u of %u CPUs online", online_cpus(), n);
  for (unsigned cpu = 1; cpu < n; ++cpu) {
    volatile unsigned seen = ~0u;
    if (!smp_call_async(cpu, record_cpu, const_cast<unsigned*>(&seen)))
      return r.fail("cannot post work to CPU %u", cpu);
    smp_wait(cpu);
    if (seen != cpu)
      return r.fail("work for CPU %u ran on CPU %u", cpu, seen);
  }
  // Every CPU's vmalloc'ed stack has an unmapped guard page below it.
  for (unsigned cpu = 0; cpu < n; ++cpu)
    if (!probe_faults(reinterpret_cast<const char*>(cpu_data(cpu).stack_bottom) - 1))
      return r.fail("the page below CPU %u's stack is mapped", cpu);
  return r.note("%u CPUs, guarded stacks", n);
}

// Two address spaces switched back and forth keep distinct non-zero ASIDs (PCIDs in CR3 when
// the CPU has them), and switching back takes the allocator's fast path (no flush).
bool test_pcid(TestResult& r) {
  UserMm* a = mm_create();
  UserMm* b = mm_create();
  if (a == nullptr || b == nullptr)
    return r.fail("mm_create failed");
  uint64_t fast0 = asid_allocator().stats().fast_switches;
  switch_mm(*a);
  uint64_t asid_a = this_cpu().loaded_asid, cr3_a = arch::read_cr3() & 0xfff;
  switch_mm(*b);
  uint64_t asid_b = this_cpu().loaded_asid, cr3_b = arch::read_cr3() & 0xfff;
  switch_mm(*a);
  uint64_t asid_a2 = this_cpu().loaded_asid;
  uint64_t fast = asid_allocator().stats().fast_switches - fast0;
  leave_mm();
  mm_destroy(a);
  mm_destroy(b);
  if (asid_a == 0 || asid_b == 0 || asid_a == asid_b)
    return r.fail("ASIDs %lu/%lu", asid_a, asid_b);
  if (asid_a2 != asid_a)
    return r.fail("ASID changed from %lu to %lu", asid_a, asid_a2);
  if (fast == 0)
    return r.fail("no fast switch");
  if (pcid_enabled() && (cr3_a != asid_a || cr3_b != asid_b))
    return r.fail("CR3 PCIDs %lu/%lu differ from the ASIDs", cr3_a, cr3_b);
  return r.note("ASIDs %lu and %lu, %lu fast switches%s", asid_a, asid_b, fast,
                pcid_enabled() ? ", PCIDs in CR3" : "; PCID not offered, so CR3 loads flush");
}

// What the reader CPU runs: tlb_reader(data, status, control) in ring 3.
struct ReaderJob {
  UserMm* mm;
  uint64_t data, status, control;
  UserRun run;
};

// Body of the work posted to CPU 1: run the reader until told to stop.
void reader_main(void* arg) {
  auto* job = static_cast<ReaderJob*>(arg);
  job->run = run_user(*job->mm, user_tlb_reader, job->data, job->status, job->control);
}

// What tlb_remap_check observed: the remapped page, the value CPU 1 read after the
// shootdown, the shootdown's generation, and CPU 1's flush record once it had returned.
struct RemapOutcome {
  uint64_t data = 0;
  uint64_t seen = 0;
  uint64_t gen = 0;
  TlbFlushRecord record;
};

// A CPU keeps reading a user page in ring 3 while this CPU remaps the page to another
// frame and shoots the old translation down; record what the reader and CPU 1 did.
bool tlb_remap_check(TestResult& r, UserMm& m, bool skip_shootdown, RemapOutcome* out) {
  mm::AddressSpace& as = m.as;
  uint64_t data =
      as.mmap(VirtAddr(0), kPageSize, mm::kVmRead | mm::kVmWrite, false).address.value();
  uint64_t status =
      as.mmap(VirtAddr(0), kPageSize, mm::kVmRead | mm::kVmWrite, false).address.value();
  uint64_t control =
      as.mmap(VirtAddr(0), kPageSize, mm::kVmRead | mm::kVmWrite, false).address.value();
  as.handle_fault(VirtAddr(data), mm::kFaultWrite);
  as.handle_fault(VirtAddr(status), mm::kFaultWrite);
  as.handle_fault(VirtAddr(control), mm::kFaultWrite);
  auto* old_page = static_cast<volatile uint64_t*>(
      mm::arch::phys_to_virt(as.page_table().translate(VirtAddr(data)).pa));
  auto* st = static_cast<volatile uint64_t*>(
      mm::arch::phys_to_virt(as.page_table().translate(VirtAddr(status)).pa));
  auto* ctl = static_cast<volatile uint64_t*>(
      mm::arch::phys_to_virt(as.page_table().translate(VirtAddr(control)).pa));
  *old_page = 0xaaaa;
  PhysAddr new_pa = kmem().buddy.alloc_phys(mm::kGfpZero, 0);
  *static_cast<volatile uint64_t*>(mm::arch::phys_to_virt(new_pa)) = 0xbbbb;
  ReaderJob job{&m, data, status, control, {}};
  if (!smp_call_async(1, reader_main, &job))
    return r.fail("cannot start the reader on CPU 1");
  bool ok = wait_counter(&st[1], 1000, kReaderTimeoutUs);
  mm::MmuGather gather(&kmem().buddy);
  mm::PtStatus remapped;
  {
    mm::SpinGuard guard(m.lock);  // a reader fault in the unmapped window waits, then is spurious
    as.page_table().unmap(VirtAddr(data), kPageSize, gather);
    remapped = as.page_table().map(VirtAddr(data), new_pa, kPageSize,
                                   mm::kPteUser | mm::kPteWrite | mm::kPteNx | mm::kPteOwned);
  }
  tlb_set_skip_remote(skip_shootdown);
  out->gen = tlb_flush_mm_range(m, data, data + kPageSize, false);
  out->record = tlb_last_flush(1);
  tlb_set_skip_remote(false);
  out->data = data;
  uint64_t reads = st[1];
  ok = ok && wait_counter(&st[1], reads + 100000, kReaderTimeoutUs);
  out->seen = st[0];
  *ctl = 1;
  smp_wait(1);
  gather.release();  // the old frame was owned by the mapping: freed only now
  if (remapped != mm::PtStatus::kOk)
    return r.fail("remap failed (%d)", static_cast<int>(remapped));
  if (!ok)
    return r.fail("the reader on CPU 1 made no progress (%lu reads, exit %ld%s%s at %lx)", st[1],
                  job.run.exit_code, job.run.killed ? " killed: " : "", job.run.cause,
                  job.run.fault_address);
  return true;
}

// Name of a flush record's kind, for messages.
const char* flush_kind_name(TlbFlushRecord::Kind kind) {
  switch (kind) {
    case TlbFlushRecord::kNone:
      return "none";
    case TlbFlushRecord::kPages:
      return "pages";
    case TlbFlushRecord::kWholeAsid:
      return "whole ASID";
    case TlbFlushRecord::kLeftLazyMm:
      return "left lazy mm";
  }
  return "?";
}

// True if `f` says its CPU flushed exactly [start, end) of `m` page by page for `gen`.
bool flushed_pages(const TlbFlushRecord& f, const UserMm* m, uint64_t gen, uint64_t start,
                   uint64_t end) {
  return f.mm == m && f.gen == gen && f.start == start && f.end == end &&
         f.kind == TlbFlushRecord::kPages;
}

// A remap on CPU 0 reaches CPU 1: CPU 1's own record shows it flushed exactly that page
// for that request's generation (what can be checked under PVM, whose shadow paging picks
// up PTE writes at once), and the reader on CPU 1 sees the new frame (a stale TLB entry
// shows here under TCG). Both are checked and reported, so a skipped shootdown fails on
// every machine.
bool test_tlb_shootdown(TestResult& r) {
  if (possible_cpus() < 2)
    return r.skip("needs 2 CPUs");
  UserMm* m = mm_create();
  if (m == nullptr)
    return r.fail("mm_create failed");
  bool skip = cmdline_has("tlb_skip_shootdown");
  TlbStats before = tlb_stats();
  RemapOutcome o;
  bool ok = tlb_remap_check(r, *m, skip, &o);
  TlbStats after = tlb_stats();
  const TlbFlushRecord& f = o.record;
  bool flushed = flushed_pages(f, m, o.gen, o.data, o.data + kPageSize);
  mm_destroy(m);
  if (!ok)
    return false;
  char stale[80] = "";
  if (o.seen != 0xbbbb)
    format(stale, sizeof(stale), "stale translation: CPU 1 still reads the old frame (%lx); ",
           o.seen);
  char unflushed[128] = "";
  if (!flushed)
    format(unflushed, sizeof(unflushed),
           "CPU 1 has no record of flushing page %lx for gen %lu (last: gen %lu [%lx, %lx) %s); ",
           o.data, o.gen, f.gen, f.start, f.end, flush_kind_name(f.kind));
  if (stale[0] != '\0' || unflushed[0] != '\0')
    return r.fail("%s%s%s", stale, unflushed,
                  skip ? "shootdown skipped on purpose (tlb_skip_shootdown)"
                       : "the shootdown did not reach CPU 1");
  uint64_t ipis = after.ipis - before.ipis;
  uint64_t lat = after.shootdowns > before.shootdowns
                     ? tsc_to_us(after.latency_tsc_total - before.latency_tsc_total) /
                           (after.shootdowns - before.shootdowns)
                     : 0;
  return r.note(
      "CPU 1 flushed the page for gen %lu and saw the new frame, %lu IPIs, mean "
      "shootdown latency %lu us",
      o.gen, ipis, lat);
}

// Map one demand-zero RW page in `as`; return its user address and direct-map view.
volatile uint64_t* map_test_page(mm::AddressSpace& as, uint64_t* va) {
  *va = as.mmap(VirtAddr(0), kPageSize, mm::kVmRead | mm::kVmWrite, false).address.value();
  as.handle_fault(VirtAddr(*va), mm::kFaultWrite);
  return static_cast<volatile uint64_t*>(
      mm::arch::phys_to_virt(as.page_table().translate(VirtAddr(*va)).pa));
}

// Unmapping many pages of an address space another CPU is running costs one shootdown:
// one IPI, one remote flush of exactly those pages (batching through MmuGather).
bool test_tlb_batch(TestResult& r) {
  if (possible_cpus() < 2)
    return r.skip("needs 2 CPUs");
  constexpr uint64_t kPages = 8;
  UserMm* m = mm_create();
  if (m == nullptr)
    return r.fail("mm_create failed");
  mm::AddressSpace& as = m->as;
  uint64_t data, status, control;
  map_test_page(as, &data);
  volatile uint64_t* st = map_test_page(as, &status);
  volatile uint64_t* ctl = map_test_page(as, &control);
  uint64_t area =
      as.mmap(VirtAddr(0), kPages * kPageSize, mm::kVmRead | mm::kVmWrite, false).address.value();
  for (uint64_t i = 0; i < kPages; ++i)
    as.handle_fault(VirtAddr(area + i * kPageSize), mm::kFaultWrite);
  ReaderJob job{m, data, status, control, {}};
  bool started = smp_call_async(1, reader_main, &job);
  bool ok = started && wait_counter(&st[1], 1000, kReaderTimeoutUs);
  TlbStats s0 = tlb_stats();
  uint64_t remote0 = cpu_data(1).tlb_remote_flushes;
  mm::MmuGather gather(&kmem().buddy);
  {
    mm::SpinGuard guard(m->lock);
    as.munmap(VirtAddr(area), kPages * kPageSize, gather);
  }
  uint64_t gen =
      tlb_flush_mm_range(*m, gather.start().value(), gather.end().value(), gather.tables_freed());
  TlbFlushRecord flush = tlb_last_flush(1);
  gather.release();
  TlbStats s1 = tlb_stats();
  uint64_t remote = cpu_data(1).tlb_remote_flushes - remote0;
  bool flushed = flushed_pages(flush, m, gen, area, area + kPages * kPageSize);
  *ctl = 1;
  if (started)
    smp_wait(1);
  mm_destroy(m);
  if (!ok)
    return r.fail("the reader on CPU 1 did not run");
  if (s1.ipis - s0.ipis != 1 || remote != 1)
    return r.fail("munmap of %lu pages: %lu IPIs, %lu remote flushes", kPages, s1.ipis - s0.ipis,
                  remote);
  if (s1.page_flushes - s0.page_flushes != kPages)
    return r.fail("%lu pages invalidated, expected %lu", s1.page_flushes - s0.page_flushes, kPages);
  if (!flushed)
    return r.fail("CPU 1's record: gen %lu [%lx, %lx) %s, expected gen %lu [%lx, %lx) pages",
                  flush.gen, flush.start, flush.end, flush_kind_name(flush.kind), gen, area,
                  area + kPages * kPageSize);
  return r.note("%lu pages unmapped: 1 IPI, %lu INVLPG on CPU 1", kPages, kPages);
}

}  // namespace

const Selftest kCpuSelftests[] = {
    {"timer", test_timer},         {"smp", test_smp},
    {"pcid", test_pcid},           {"tlb_shootdown", test_tlb_shootdown},
    {"tlb_batch", test_tlb_batch}, {nullptr, nullptr},
};

}  // namespace hvmm::guest
