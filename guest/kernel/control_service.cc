// The control service: validate a request, run it, describe the outcome. Requests are
// served one at a time on the calling CPU. Workloads run in ring 3 (workloads.h); TLB
// flushes go through the kernel's shootdown code and are counted from the flush records
// each CPU keeps (tlb.h), not from acknowledgements.
#include "hvmm/guest/control_service.h"

#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/io_window.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/process.h"
#include "hvmm/guest/smp.h"
#include "hvmm/guest/time.h"
#include "hvmm/guest/tlb.h"
#include "hvmm/guest/workloads.h"

namespace hvmm::guest {
namespace {

using control::ControlRequest;
using control::ControlResponse;
using control::Op;
using control::Status;

// TlbFlushResult::method values (control_protocol.h).
constexpr uint32_t kMethodPages = 1, kMethodAddressSpace = 2, kMethodEverything = 3;

// True if `op` is one this version of the protocol defines.
bool known_op(Op op) {
  return op >= Op::kPing && op <= Op::kProbe;
}

// The pattern kind a workload kind names, or false for an unknown kind.
bool pattern_kind(control::WorkloadKind kind, PatternKind* out) {
  switch (kind) {
    case control::WorkloadKind::kTouchSequential:
      *out = PatternKind::kSequential;
      return true;
    case control::WorkloadKind::kTouchRandom:
      *out = PatternKind::kRandom;
      return true;
    case control::WorkloadKind::kTouchMix:
      *out = PatternKind::kMix;
      return true;
  }
  return false;
}

// The pattern workload a start request describes, or false if its arguments are out of
// range (unknown kind or flag, size 0 or above kPatternMaxBytes).
bool parse_start(const control::WorkloadStartArgs& a, PatternSpec* spec) {
  PatternKind kind;
  if (!pattern_kind(a.kind, &kind))
    return false;
  if ((a.flags & ~control::kWorkloadHold) != 0 || a.bytes == 0 || a.bytes > kPatternMaxBytes)
    return false;
  *spec = PatternSpec{kind, (a.bytes + kPageSize - 1) >> kPageShift, a.seed};
  return true;
}

// True if `pages` more user pages (and their page tables) can come from free memory or
// from the balloon (which gives pages back when the allocator runs short).
bool memory_for(uint64_t pages) {
  uint64_t need = pages + pages / 512 + 16;
  return need <= kmem().buddy.free_pages_total() + balloon_held_pages();
}

// The status of a pattern run.
Status status_of(PatternOutcome outcome) {
  switch (outcome) {
    case PatternOutcome::kOk:
      return Status::kOk;
    case PatternOutcome::kMismatch:
      return Status::kMismatch;
    case PatternOutcome::kNoMemory:
    case PatternOutcome::kKilled:
      break;
  }
  return Status::kOutOfMemory;
}

// kWorkloadStart: check room and memory first, then run; a held workload enters the table.
Status workload_start(const control::WorkloadStartArgs& args, ControlResponse& out) {
  PatternSpec spec;
  if (!parse_start(args, &spec))
    return Status::kBadArguments;
  bool hold = (args.flags & control::kWorkloadHold) != 0;
  if (hold && !pattern_can_hold())
    return Status::kBusy;
  if (!memory_for(spec.pages))
    return Status::kOutOfMemory;
  HeldWorkload held;
  PatternResult r = pattern_start(spec, hold ? &held : nullptr);
  control::WorkloadStartResult& res = out.result.workload_start;
  res = {0, r.cpu, r.pages, r.checksum, tsc_to_ns(r.duration_tsc)};
  if (hold && r.outcome == PatternOutcome::kOk)
    res.workload = pattern_hold(held);
  return status_of(r.outcome);
}

// kWorkloadVerify: re-read the held workload's pages in ring 3.
Status workload_verify(const control::WorkloadIdArgs& args, ControlResponse& out) {
  HeldWorkload* held = pattern_find(args.workload);
  if (held == nullptr)
    return Status::kNoSuchWorkload;
  PatternResult r = pattern_verify(*held);
  out.result.workload_verify = {r.pages, r.mismatched_pages, r.checksum, tsc_to_ns(r.duration_tsc)};
  return status_of(r.outcome);
}

// The rewrite a request describes for `held`, or false if its arguments are out of range
// (unknown flag, reserved not 0, no pages, a range past the workload's end, too long).
bool parse_rewrite(const control::WorkloadRewriteArgs& a, const HeldWorkload& held,
                   RewriteSpec* spec) {
  if ((a.flags & ~control::kRewriteReadOnly) != 0 || a.reserved != 0 || a.pages == 0 ||
      a.first_page >= held.spec.pages || a.pages > held.spec.pages - a.first_page ||
      a.duration_ms > control::kRewriteMaxDurationMs)
    return false;
  *spec = RewriteSpec{a.first_page, a.pages, tsc_hz() * a.duration_ms / 1000,
                      (a.flags & control::kRewriteReadOnly) != 0};
  return true;
}

// kWorkloadRewrite: keep a range of a held workload hot (written, or read) for a while.
Status workload_rewrite(const control::WorkloadRewriteArgs& args, ControlResponse& out) {
  HeldWorkload* held = pattern_find(args.workload);
  if (held == nullptr)
    return Status::kNoSuchWorkload;
  RewriteSpec spec;
  if (!parse_rewrite(args, *held, &spec))
    return Status::kBadArguments;
  RewriteResult r = pattern_rewrite(*held, spec);
  out.result.workload_rewrite = {r.rounds, r.rounds * spec.pages, tsc_to_ns(r.duration_tsc)};
  return status_of(r.outcome);
}

// kWorkloadExit: destroy the held workload and free its memory.
Status workload_exit(const control::WorkloadIdArgs& args) {
  HeldWorkload* held = pattern_find(args.workload);
  if (held == nullptr)
    return Status::kNoSuchWorkload;
  pattern_discard(*held);
  return Status::kOk;
}

// Slab pages of every kmalloc class and of the process caches.
uint64_t slab_pages() {
  uint64_t pages = process_slab_pages();
  for (unsigned i = 0; i < mm::kKmallocClasses; ++i) {
    mm::KmemCache& c = kmem().kmalloc.cache(i);
    pages += c.stats().slabs << c.slab_order();
  }
  return pages;
}

// kMemStats: the allocator's view (reported = free blocks still marked reported), the
// balloon's and the held workloads'.
void mem_stats(ControlResponse& out) {
  uint64_t managed = 0, reported = 0;
  for (unsigned z = 0; z < mm::kNrZones; ++z) {
    mm::ZoneStats zone = kmem().buddy.zone_stats(static_cast<mm::ZoneId>(z));
    managed += zone.managed_pages;
    reported += zone.reported_pages;
  }
  out.result.mem_stats = {managed,
                          kmem().buddy.free_pages_total(),
                          balloon_held_pages(),
                          reported,
                          pattern_held_pages(),
                          slab_pages()};
}

// Flush [start, end) of a held workload's address space on every CPU that may cache it,
// the calling CPU included (it loads the address space first, so the shootdown reaches it
// too); count the CPUs whose own record shows this request, and how this CPU flushed.
void flush_workload(UserMm& m, uint64_t start, uint64_t end, control::TlbFlushResult& res) {
  switch_mm(m);
  uint64_t t0 = arch::rdtsc();
  uint64_t gen = tlb_flush_mm_range(m, start, end, false);
  res.duration_ns = tsc_to_ns(arch::rdtsc() - t0);
  leave_mm();
  res.cpus = 0;
  for (unsigned cpu = 0; cpu < possible_cpus(); ++cpu) {
    TlbFlushRecord rec = tlb_last_flush(cpu);
    if (rec.mm == &m && rec.gen == gen)
      ++res.cpus;
  }
  TlbFlushRecord mine = tlb_last_flush(this_cpu().cpu);
  res.method = mine.kind == TlbFlushRecord::kPages ? kMethodPages : kMethodAddressSpace;
}

// Flush everything, global entries included, on every online CPU: the caller plus every
// CPU the shootdown sent an IPI to.
void flush_everything(control::TlbFlushResult& res) {
  uint64_t ipis = tlb_stats().ipis;
  uint64_t t0 = arch::rdtsc();
  tlb_flush_everything();
  res.duration_ns = tsc_to_ns(arch::rdtsc() - t0);
  res.cpus = 1 + static_cast<uint32_t>(tlb_stats().ipis - ipis);
  res.method = kMethodEverything;
  res.pages = 0;
}

// kTlbFlush: check the scope, the workload and the range (page-rounded, inside the user
// half, not empty), then flush.
Status tlb_flush(const control::TlbFlushArgs& args, ControlResponse& out) {
  control::TlbFlushResult& res = out.result.tlb_flush;
  if (args.scope == control::TlbScope::kKernelAll) {
    flush_everything(res);
    return Status::kOk;
  }
  bool range = args.scope == control::TlbScope::kRange;
  if (!range && args.scope != control::TlbScope::kAddressSpace)
    return Status::kBadArguments;
  uint64_t user_end = mm::kUserEnd.value();
  if (range && (args.length == 0 || args.va >= user_end || args.length > user_end - args.va))
    return Status::kBadArguments;
  HeldWorkload* held = pattern_find(args.workload);
  if (held == nullptr)
    return Status::kNoSuchWorkload;
  uint64_t start = range ? args.va & ~(kPageSize - 1) : 0;
  uint64_t end = range ? align_up(args.va + args.length, kPageSize) : user_end;
  res.pages = range ? (end - start) >> kPageShift : 0;
  flush_workload(*held->mm, start, end, res);
  return Status::kOk;
}

// kShutdown: the status must fit the exit port's byte.
Status shutdown(const control::ShutdownArgs& args, ControlReply& reply) {
  if (args.exit_status > 0xff)
    return Status::kBadArguments;
  reply.shutdown = true;
  reply.exit_status = static_cast<uint8_t>(args.exit_status);
  return Status::kOk;
}

// kProbe: 4 bytes at a guest-physical address through the I/O window. The address must be
// 4-byte aligned, below 2^52 and below what this CPU can map (a PTE with a higher address
// would set reserved bits); only kProbeWrite may be set. kOutOfMemory when the window's
// page table cannot be had.
Status probe(const control::ProbeArgs& args, ControlResponse& out) {
  const unsigned bits = physical_address_bits() < 52 ? physical_address_bits() : 52;
  if ((args.ipa & 3) != 0 || args.ipa >= (uint64_t{1} << bits) ||
      (args.flags & ~control::kProbeWrite) != 0)
    return Status::kBadArguments;
  const bool write = (args.flags & control::kProbeWrite) != 0;
  uint32_t value = args.value;
  if (!io_window_access(PhysAddr(args.ipa), write, &value))
    return Status::kOutOfMemory;
  out.result.probe = {value, 0};
  return Status::kOk;
}

// Run a request whose header is valid.
Status dispatch(const ControlRequest& req, ControlReply& reply) {
  ControlResponse& out = reply.response;
  switch (req.op) {
    case Op::kPing:
      return Status::kOk;
    case Op::kWorkloadStart:
      return workload_start(req.args.workload_start, out);
    case Op::kWorkloadVerify:
      return workload_verify(req.args.workload_id, out);
    case Op::kWorkloadExit:
      return workload_exit(req.args.workload_id);
    case Op::kMemStats:
      mem_stats(out);
      return Status::kOk;
    case Op::kTlbFlush:
      return tlb_flush(req.args.tlb_flush, out);
    case Op::kShutdown:
      return shutdown(req.args.shutdown, reply);
    case Op::kWorkloadRewrite:
      return workload_rewrite(req.args.workload_rewrite, out);
    case Op::kProbe:
      return probe(req.args.probe, out);
  }
  return Status::kBadRequest;
}

}  // namespace

// Header first (magic, version, op): a request that fails it runs nothing.
ControlReply control_serve(const ControlRequest& request, uint64_t taken_tsc) {
  ControlReply reply;
  ControlResponse& out = reply.response;
  out.magic = control::kResponseMagic;
  out.version = control::kControlVersion;
  out.op = request.op;
  out.tag = request.tag;
  bool valid = request.magic == control::kRequestMagic &&
               request.version == control::kControlVersion && known_op(request.op);
  out.status = valid ? dispatch(request, reply) : Status::kBadRequest;
  out.latency_ns = tsc_to_ns(arch::rdtsc() - taken_tsc);
  return reply;
}

}  // namespace hvmm::guest
