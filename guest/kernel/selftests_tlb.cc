// Selftests of the TLB maintenance policy: range flushes above the single-page ceiling
// become one full flush, and a CPU in lazy-TLB mode is skipped by shootdowns unless page
// tables were freed, in which case it is interrupted and leaves the address space.
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/process.h"
#include "hvmm/guest/selftest.h"
#include "hvmm/guest/smp.h"
#include "hvmm/guest/tlb.h"

extern "C" char user_touch_seq[];

namespace hvmm::guest {
namespace {

constexpr uint64_t kBase = 0x10000000;

// Up to the ceiling a range costs one INVLPG per page; above it, one full flush.
bool test_tlb_ceiling(TestResult& r) {
  UserMm* m = mm_create();
  if (m == nullptr)
    return r.fail("mm_create failed");
  switch_mm(*m);
  TlbStats s0 = tlb_stats();
  tlb_flush_mm_range(*m, kBase, kBase + 4 * kPageSize, false);
  TlbStats s1 = tlb_stats();
  tlb_flush_mm_range(*m, kBase, kBase + (kTlbFlushCeiling + 1) * kPageSize, false);
  TlbStats s2 = tlb_stats();
  leave_mm();
  mm_destroy(m);
  if (s1.page_flushes - s0.page_flushes != 4 || s1.full_flushes != s0.full_flushes)
    return r.fail("4-page range: %lu page flushes, %lu full", s1.page_flushes - s0.page_flushes,
                  s1.full_flushes - s0.full_flushes);
  if (s2.page_flushes != s1.page_flushes || s2.full_flushes - s1.full_flushes != 1)
    return r.fail("%lu-page range: %lu page flushes, %lu full", kTlbFlushCeiling + 1,
                  s2.page_flushes - s1.page_flushes, s2.full_flushes - s1.full_flushes);
  return true;
}

// What CPU 1 runs: a short program that leaves the CPU lazy with the tables loaded.
struct LazyJob {
  UserMm* mm;
  UserRun run;
};

// Body of the work posted to CPU 1.
void run_short_program(void* arg) {
  auto* job = static_cast<LazyJob*>(arg);
  job->run = run_user(*job->mm, user_touch_seq, kPageSize, 0, 0);
}

// Check the lazy CPU is skipped, then reached when tables are freed.
bool lazy_checks(TestResult& r, UserMm& m) {
  PerCpu& cpu1 = cpu_data(1);
  if (cpu1.loaded_mm != &m || !cpu1.lazy_tlb)
    return r.fail("CPU 1 is not lazy in the mm");
  TlbStats s0 = tlb_stats();
  tlb_flush_mm_range(m, kBase, kBase + kPageSize, false);
  TlbStats s1 = tlb_stats();
  if (s1.ipis != s0.ipis || s1.lazy_skipped - s0.lazy_skipped != 1)
    return r.fail("lazy CPU not skipped (%lu IPIs, %lu skips)", s1.ipis - s0.ipis,
                  s1.lazy_skipped - s0.lazy_skipped);
  uint64_t gen = tlb_flush_mm_range(m, kBase, kBase + kPageSize, true);
  TlbFlushRecord left = tlb_last_flush(1);
  TlbStats s2 = tlb_stats();
  if (s2.ipis - s1.ipis != 1)
    return r.fail("freed tables did not interrupt the lazy CPU");
  if (cpu1.loaded_mm != nullptr)
    return r.fail("the lazy CPU kept the freed tables loaded");
  if (left.mm != &m || left.gen != gen || left.kind != TlbFlushRecord::kLeftLazyMm)
    return r.fail("CPU 1 has no record of leaving the mm for gen %lu (last: gen %lu, kind %u)", gen,
                  left.gen, static_cast<unsigned>(left.kind));
  return true;
}

// Lazy CPUs are skipped unless page tables were freed.
bool test_tlb_lazy(TestResult& r) {
  if (possible_cpus() < 2)
    return r.skip("needs 2 CPUs");
  UserMm* m = mm_create();
  if (m == nullptr)
    return r.fail("mm_create failed");
  LazyJob job{m, {}};
  bool ok = smp_call_async(1, run_short_program, &job);
  if (ok)
    smp_wait(1);
  ok = ok ? (job.run.exit_code == 0 && !job.run.killed) : r.fail("cannot post work to CPU 1");
  if (ok && !lazy_checks(r, *m))
    ok = false;
  else if (!ok && r.message[0] == '\0')
    r.fail("program on CPU 1 exited %ld", job.run.exit_code);
  mm_destroy(m);
  return ok;
}

}  // namespace

const Selftest kTlbSelftests[] = {
    {"tlb_ceiling", test_tlb_ceiling},
    {"tlb_lazy", test_tlb_lazy},
    {nullptr, nullptr},
};

}  // namespace hvmm::guest
