// Selftests of the control service without a device: scripted requests go through
// control_serve() as the driver would pass them, and each answer is checked against what
// the protocol promises (header echo, status per bad field, the seeded pattern's checksum,
// verify catching a corrupted page, the held-workload table, TLB flush methods and CPUs).
#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/control_service.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/selftest.h"
#include "hvmm/guest/tlb.h"
#include "hvmm/guest/workloads.h"

namespace hvmm::guest {
namespace {

using control::ControlRequest;
using control::ControlResponse;
using control::Op;
using control::Status;
using control::TlbScope;
using control::WorkloadKind;

constexpr uint64_t kSeed = 0x5eed0000c0ffee01ull;

// A word of the kernel image the probe reads back (rodata: the loader wrote it, nothing else).
[[gnu::used]] const uint32_t kProbeCanary = 0x50524f42;  // "BORP"

// A well-formed request header for `op`, tagged `tag`.
ControlRequest request(Op op, uint64_t tag) {
  ControlRequest r{};
  r.magic = control::kRequestMagic;
  r.version = control::kControlVersion;
  r.op = op;
  r.tag = tag;
  return r;
}

// Serve `r` as if the transport had just taken it.
ControlReply serve(const ControlRequest& r) {
  return control_serve(r, arch::rdtsc());
}

// A kWorkloadStart request.
ControlRequest start(WorkloadKind kind, uint32_t flags, uint64_t bytes, uint64_t seed) {
  ControlRequest r = request(Op::kWorkloadStart, 100);
  r.args.workload_start = {kind, flags, bytes, seed};
  return r;
}

// A request naming workload `id` (verify or exit).
ControlRequest by_id(Op op, uint32_t id) {
  ControlRequest r = request(op, 200 + id);
  r.args.workload_id = {id};
  return r;
}

// A kWorkloadRewrite request.
ControlRequest rewrite(uint32_t id, uint64_t first_page, uint64_t pages, uint32_t duration_ms,
                       uint32_t flags) {
  ControlRequest r = request(Op::kWorkloadRewrite, 400 + id);
  r.args.workload_rewrite = {id, flags, first_page, pages, duration_ms, 0};
  return r;
}

// A kProbe request.
ControlRequest probe(uint64_t ipa, uint32_t flags = 0, uint32_t value = 0) {
  ControlRequest r = request(Op::kProbe, 500);
  r.args.probe = {ipa, flags, value};
  return r;
}

// A kTlbFlush request.
ControlRequest flush(TlbScope scope, uint32_t id, uint64_t va, uint64_t length) {
  ControlRequest r = request(Op::kTlbFlush, 300);
  r.args.tlb_flush = {scope, id, va, length};
  return r;
}

// The status `r` gets, as an int for messages.
int status_of(const ControlRequest& r) {
  return static_cast<int>(serve(r).response.status);
}

// A bad header gets kBadRequest, arguments out of range kBadArguments, unknown ids
// kNoSuchWorkload; every answer echoes op and tag with the response magic and version.
bool test_control_requests(TestResult& r) {
  ControlReply ping = serve(request(Op::kPing, 0xabcdef));
  const ControlResponse& p = ping.response;
  if (p.magic != control::kResponseMagic || p.version != control::kControlVersion ||
      p.op != Op::kPing || p.tag != 0xabcdef || p.status != Status::kOk || p.latency_ns == 0)
    return r.fail("ping: magic %x version %u op %u tag %lx status %d latency %lu ns", p.magic,
                  p.version, static_cast<unsigned>(p.op), p.tag, static_cast<int>(p.status),
                  p.latency_ns);
  ControlRequest bad = request(Op::kPing, 7);
  bad.magic = control::kResponseMagic;
  ControlRequest old = request(Op::kPing, 7);
  old.version = control::kControlVersion + 1;
  ControlRequest op0 = request(static_cast<Op>(0), 7), op10 = request(static_cast<Op>(10), 7);
  for (const ControlRequest* q : {&bad, &old, &op0, &op10}) {
    ControlResponse a = serve(*q).response;
    if (a.status != Status::kBadRequest || a.tag != 7 || a.op != q->op)
      return r.fail("bad header (magic %x version %u op %u): status %d tag %lu", q->magic,
                    q->version, static_cast<unsigned>(q->op), static_cast<int>(a.status), a.tag);
  }
  const ControlRequest bad_args[] = {
      start(static_cast<WorkloadKind>(4), 0, 4096, 1),
      start(WorkloadKind::kTouchSequential, 2, 4096, 1),
      start(WorkloadKind::kTouchSequential, 0, 0, 1),
      start(WorkloadKind::kTouchRandom, 0, kPatternMaxBytes + 1, 1),
      flush(static_cast<TlbScope>(0), 1, 0, 4096),
      flush(TlbScope::kRange, 1, kPatternBase, 0),
      flush(TlbScope::kRange, 1, mm::kUserEnd.value() - kPageSize, 2 * kPageSize),
      flush(TlbScope::kRange, 1, ~0ull - kPageSize, 2 * kPageSize),
      probe(0x6002),
      probe(uint64_t{1} << 52),
      probe(0x6000, 2),
  };
  for (unsigned i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); ++i)
    if (int s = status_of(bad_args[i]); s != static_cast<int>(Status::kBadArguments))
      return r.fail("bad arguments #%u: status %d", i, s);
  const ControlRequest no_such[] = {by_id(Op::kWorkloadVerify, 0), by_id(Op::kWorkloadExit, 999),
                                    flush(TlbScope::kAddressSpace, 999, 0, 0),
                                    flush(TlbScope::kRange, 999, kPatternBase, kPageSize),
                                    rewrite(999, 0, 1, 0, 0)};
  for (unsigned i = 0; i < sizeof(no_such) / sizeof(no_such[0]); ++i)
    if (int s = status_of(no_such[i]); s != static_cast<int>(Status::kNoSuchWorkload))
      return r.fail("unknown workload #%u: status %d", i, s);
  // More than RAM: refused up front, nothing runs.
  if (int s = status_of(start(WorkloadKind::kTouchSequential, 0, uint64_t{1} << 39, 1));
      s != static_cast<int>(Status::kOutOfMemory))
    return r.fail("512 GiB workload: status %d", s);
  // A probe reads RAM through the uncached window: the canary, twice (the window is remapped).
  for (int i = 0; i < 2; ++i) {
    ControlResponse a = serve(probe(kernel_image_phys(&kProbeCanary).value())).response;
    if (a.status != Status::kOk || a.result.probe.value != kProbeCanary)
      return r.fail("probe of the canary: status %d value %x", static_cast<int>(a.status),
                    a.result.probe.value);
  }
  ControlRequest down = request(Op::kShutdown, 9);
  down.args.shutdown.exit_status = 256;
  ControlReply too_big = serve(down);
  down.args.shutdown.exit_status = 7;
  ControlReply ok = serve(down);
  if (too_big.response.status != Status::kBadArguments || too_big.shutdown)
    return r.fail("shutdown 256: status %d, shutdown %d", static_cast<int>(too_big.response.status),
                  too_big.shutdown);
  if (ok.response.status != Status::kOk || !ok.shutdown || ok.exit_status != 7)
    return r.fail("shutdown 7: status %d, shutdown %d, exit %u",
                  static_cast<int>(ok.response.status), ok.shutdown, ok.exit_status);
  return true;
}

// The unheld runs of one seed: sequential and random order give the checksum the ring-0
// reference computes (it is taken in page order), another seed gives another one.
bool check_pattern_checksums(TestResult& r) {
  uint64_t expected = pattern_reference_checksum(kSeed, 16);
  for (WorkloadKind kind : {WorkloadKind::kTouchSequential, WorkloadKind::kTouchRandom}) {
    ControlResponse a = serve(start(kind, 0, 16 * kPageSize - 100, kSeed)).response;
    const control::WorkloadStartResult& w = a.result.workload_start;
    if (a.status != Status::kOk || w.workload != 0 || w.pages != 16 || w.checksum != expected ||
        w.cpu != this_cpu().cpu || w.duration_ns == 0)
      return r.fail("kind %u: status %d id %u pages %lu checksum %lx (want %lx) cpu %u, %lu ns",
                    static_cast<unsigned>(kind), static_cast<int>(a.status), w.workload, w.pages,
                    w.checksum, expected, w.cpu, w.duration_ns);
  }
  ControlResponse other =
      serve(start(WorkloadKind::kTouchSequential, 0, 16 * kPageSize, kSeed + 1)).response;
  if (other.status != Status::kOk || other.result.workload_start.checksum == expected)
    return r.fail("seed + 1: status %d, checksum %lx", static_cast<int>(other.status),
                  other.result.workload_start.checksum);
  return true;
}

// Flip one bit of word 7 of page `page` of a held workload, through the direct map.
void corrupt_page(const HeldWorkload& held, uint64_t page) {
  VirtAddr va(held.base + page * kPageSize + 7 * 8);
  mm::Translation t = held.mm->as.page_table().translate(va);
  if (!t.present)
    return;
  auto* word = static_cast<volatile uint64_t*>(mm::arch::phys_to_virt(t.pa));
  *word = *word ^ 1;
}

// Verify `id` and expect `status` with `mismatched` bad pages; the checksum is returned.
bool expect_verify(TestResult& r, uint32_t id, Status status, uint64_t mismatched,
                   uint64_t* checksum) {
  ControlResponse a = serve(by_id(Op::kWorkloadVerify, id)).response;
  const control::WorkloadVerifyResult& v = a.result.workload_verify;
  *checksum = v.checksum;
  if (a.status == status && v.mismatched_pages == mismatched && v.pages == 64)
    return true;
  return r.fail("verify %u: status %d (want %d), %lu of %lu pages mismatched (want %lu)", id,
                static_cast<int>(a.status), static_cast<int>(status), v.mismatched_pages, v.pages,
                mismatched);
}

// The user pages kMemStats reports.
uint64_t user_pages() {
  return serve(request(Op::kMemStats, 1)).response.result.mem_stats.user;
}

// A held workload keeps its pages (user pages rise), verifies clean, catches one corrupted
// page, and its exit frees every page; its id is then unknown.
bool check_held_workload(TestResult& r) {
  mm::BuddyAllocator& buddy = kmem().buddy;
  buddy.drain_all();
  uint64_t free_before = buddy.free_pages_total(), user_before = user_pages();
  ControlResponse a =
      serve(start(WorkloadKind::kTouchRandom, control::kWorkloadHold, 64 * kPageSize, kSeed))
          .response;
  uint32_t id = a.result.workload_start.workload;
  HeldWorkload* held = pattern_find(id);
  if (a.status != Status::kOk || id == 0 || held == nullptr)
    return r.fail("held start: status %d id %u", static_cast<int>(a.status), id);
  if (user_pages() < user_before + 64)
    return r.fail("held: %lu user pages, %lu before", user_pages(), user_before);
  uint64_t clean = 0, dirty = 0;
  if (!expect_verify(r, id, Status::kOk, 0, &clean))
    return false;
  if (clean != a.result.workload_start.checksum)
    return r.fail("verify checksum %lx, start said %lx", clean, a.result.workload_start.checksum);
  corrupt_page(*held, 5);
  if (!expect_verify(r, id, Status::kMismatch, 1, &dirty))
    return false;
  if (dirty == clean)
    return r.fail("a corrupted page left the checksum at %lx", clean);
  if (int s = status_of(by_id(Op::kWorkloadExit, id)); s != static_cast<int>(Status::kOk))
    return r.fail("exit: status %d", s);
  if (int s = status_of(by_id(Op::kWorkloadVerify, id));
      s != static_cast<int>(Status::kNoSuchWorkload))
    return r.fail("verify after exit: status %d", s);
  if (user_pages() != user_before)
    return r.fail("after exit: %lu user pages, %lu before", user_pages(), user_before);
  buddy.drain_all();
  int64_t leaked = static_cast<int64_t>(free_before - buddy.free_pages_total());
  if (leaked > 16)
    return r.fail("%ld pages not returned after exit", leaked);
  return r.note("checksum %lx", clean);
}

// Rewrite [first, first + pages) of `id` for `ms` and expect at least one round, every
// round over the whole range.
bool expect_rewrite(TestResult& r, uint32_t id, uint64_t first, uint64_t pages, uint32_t ms,
                    uint32_t flags) {
  ControlResponse a = serve(rewrite(id, first, pages, ms, flags)).response;
  const control::WorkloadRewriteResult& w = a.result.workload_rewrite;
  if (a.status == Status::kOk && w.rounds >= 1 && w.pages == w.rounds * pages && w.duration_ns != 0)
    return true;
  return r.fail("rewrite %u [%lu, +%lu) flags %u: status %d, %lu rounds, %lu pages", id, first,
                pages, flags, static_cast<int>(a.status), w.rounds, w.pages);
}

// Out of range, pages 0, an unknown flag, a reserved field set or too long: kBadArguments.
bool check_rewrite_bad_arguments(TestResult& r, uint32_t id) {
  ControlRequest reserved = rewrite(id, 0, 1, 0, 0);
  reserved.args.workload_rewrite.reserved = 1;
  const ControlRequest bad[] = {
      rewrite(id, 64, 1, 0, 0),
      rewrite(id, 60, 5, 0, 0),
      rewrite(id, 0, 65, 0, 0),
      rewrite(id, 0, 0, 0, 0),
      rewrite(id, ~0ull, 2, 0, 0),
      rewrite(id, 1, ~0ull, 0, 0),
      rewrite(id, 0, 1, 0, 2),
      rewrite(id, 0, 1, control::kRewriteMaxDurationMs + 1, 0),
      reserved,
  };
  for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
    if (int s = status_of(bad[i]); s != static_cast<int>(Status::kBadArguments))
      return r.fail("bad rewrite #%u: status %d", i, s);
  return true;
}

// For the pattern and the mix: a held 64-page workload verifies with its start checksum;
// rewriting a range keeps it so, and really writes (a corrupted page in the range is
// restored), while a read-only pass leaves a corrupted page as it is; bad ranges are
// kBadArguments.
bool check_rewrite(TestResult& r, WorkloadKind kind) {
  ControlResponse a = serve(start(kind, control::kWorkloadHold, 64 * kPageSize, kSeed)).response;
  uint32_t id = a.result.workload_start.workload;
  HeldWorkload* held = pattern_find(id);
  if (a.status != Status::kOk || held == nullptr)
    return r.fail("held kind %u: status %d", static_cast<unsigned>(kind),
                  static_cast<int>(a.status));
  uint64_t clean = 0, after = 0, ignored = 0;
  bool ok = expect_verify(r, id, Status::kOk, 0, &clean) && expect_rewrite(r, id, 8, 32, 2, 0) &&
            expect_verify(r, id, Status::kOk, 0, &after);
  if (ok && (clean != a.result.workload_start.checksum || after != clean))
    ok = r.fail("kind %u: checksums start %lx, verify %lx, after rewrite %lx",
                static_cast<unsigned>(kind), a.result.workload_start.checksum, clean, after);
  if (ok)
    corrupt_page(*held, 20);
  ok = ok && expect_rewrite(r, id, 0, 64, 0, control::kRewriteReadOnly) &&
       expect_verify(r, id, Status::kMismatch, 1, &ignored) && expect_rewrite(r, id, 20, 1, 0, 0) &&
       expect_verify(r, id, Status::kOk, 0, &after) && check_rewrite_bad_arguments(r, id);
  if (ok && after != clean)
    ok = r.fail("kind %u: after restoring, checksum %lx (want %lx)", static_cast<unsigned>(kind),
                after, clean);
  status_of(by_id(Op::kWorkloadExit, id));
  return ok;
}

// Unheld runs give the reference checksum in both orders; a held one survives verify,
// catches corruption, and frees its memory on exit; rewrites keep the contents, for the
// pattern and the mix.
bool test_control_workloads(TestResult& r) {
  return check_pattern_checksums(r) && check_held_workload(r) &&
         check_rewrite(r, WorkloadKind::kTouchSequential) &&
         check_rewrite(r, WorkloadKind::kTouchMix);
}

// The table holds kMaxHeldWorkloads; one more is kBusy; after an exit there is room again,
// under a new id (ids are never reused).
bool test_control_hold(TestResult& r) {
  uint32_t ids[kMaxHeldWorkloads] = {};
  uint32_t highest = 0;
  bool ok = true;
  for (unsigned i = 0; i < kMaxHeldWorkloads && ok; ++i) {
    ControlResponse a =
        serve(start(WorkloadKind::kTouchSequential, control::kWorkloadHold, kPageSize, i)).response;
    ids[i] = a.result.workload_start.workload;
    highest = ids[i] > highest ? ids[i] : highest;
    if (a.status != Status::kOk || ids[i] == 0)
      ok = r.fail("hold #%u: status %d id %u", i, static_cast<int>(a.status), ids[i]);
  }
  int busy = status_of(start(WorkloadKind::kTouchSequential, control::kWorkloadHold, kPageSize, 9));
  if (ok && busy != static_cast<int>(Status::kBusy))
    ok = r.fail("a full table answered %d", busy);
  if (ok && status_of(by_id(Op::kWorkloadExit, ids[3])) != static_cast<int>(Status::kOk))
    ok = r.fail("exit of %u failed", ids[3]);
  ControlResponse again =
      serve(start(WorkloadKind::kTouchSequential, control::kWorkloadHold, kPageSize, 10)).response;
  uint32_t fresh = again.result.workload_start.workload;
  if (ok && (again.status != Status::kOk || fresh <= highest))
    ok = r.fail("after an exit: status %d id %u (highest before %u)",
                static_cast<int>(again.status), fresh, highest);
  ids[3] = fresh;
  for (uint32_t id : ids)
    status_of(by_id(Op::kWorkloadExit, id));
  return ok;
}

// Expect a kTlbFlush result.
bool expect_flush(TestResult& r, const char* what, const ControlRequest& q, uint32_t cpus,
                  uint32_t method, uint64_t pages) {
  ControlResponse a = serve(q).response;
  const control::TlbFlushResult& f = a.result.tlb_flush;
  if (a.status == Status::kOk && f.cpus == cpus && f.method == method && f.pages == pages)
    return true;
  return r.fail("%s: status %d, %u CPUs (want %u), method %u (want %u), %lu pages (want %lu)", what,
                static_cast<int>(a.status), f.cpus, cpus, f.method, method, f.pages, pages);
}

// Range flushes name page-rounded ranges and use INVLPG up to the ceiling, one PCID flush
// above it and for a whole address space; this CPU's record names the range; kKernelAll
// reaches every online CPU.
bool test_control_tlb(TestResult& r) {
  ControlResponse a =
      serve(start(WorkloadKind::kTouchSequential, control::kWorkloadHold, 4 * kPageSize, kSeed))
          .response;
  uint32_t id = a.result.workload_start.workload;
  if (a.status != Status::kOk || id == 0)
    return r.fail("held start: status %d", static_cast<int>(a.status));
  // Nothing else runs the workload: only this CPU carries the flush out.
  bool ok = expect_flush(r, "2-page range",
                         flush(TlbScope::kRange, id, kPatternBase + 100, kPageSize), 1, 1, 2);
  TlbFlushRecord rec = tlb_last_flush(this_cpu().cpu);
  if (ok && (rec.start != kPatternBase || rec.end != kPatternBase + 2 * kPageSize))
    ok = r.fail("this CPU flushed [%lx, %lx), not the request's 2 pages", rec.start, rec.end);
  ok = ok && expect_flush(r, "64-page range",
                          flush(TlbScope::kRange, id, kPatternBase, 64 * kPageSize), 1, 2, 64);
  ok = ok && expect_flush(r, "address space", flush(TlbScope::kAddressSpace, id, 0, 0), 1, 2, 0);
  ok = ok &&
       expect_flush(r, "everything", flush(TlbScope::kKernelAll, 0, 0, 0), online_cpus(), 3, 0);
  status_of(by_id(Op::kWorkloadExit, id));
  return ok ? r.note("%u CPUs for kKernelAll", online_cpus()) : false;
}

}  // namespace

const Selftest kControlSelftests[] = {
    {"control_requests", test_control_requests},
    {"control_workloads", test_control_workloads},
    {"control_hold", test_control_hold},
    {"control_tlb", test_control_tlb},
    {nullptr, nullptr},
};

}  // namespace hvmm::guest
