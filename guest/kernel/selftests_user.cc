// Selftests of ring-3 processes: the built-in workloads run to a clean exit, and faults
// are reported with their cause (permission fault on a read-only page, segv outside every
// area) while the kernel survives.
#include "hvmm/guest/memory.h"
#include "hvmm/guest/process.h"
#include "hvmm/guest/runtime.h"
#include "hvmm/guest/selftest.h"
#include "hvmm/guest/smp.h"

extern "C" char user_touch_seq[], user_touch_random[], user_churn[], user_brk_grow[];
extern "C" char user_write_to[], user_read_from[];

namespace hvmm::guest {
namespace {

// Run `program` in a fresh address space and return how it ended.
UserRun run_fresh(const char* program, uint64_t a0, uint64_t a1, uint64_t a2,
                  mm::AddressSpaceStats* stats = nullptr) {
  UserMm* m = mm_create();
  if (m == nullptr)
    return UserRun{-1, true, "no memory", 0, 0, 0};
  UserRun run = run_user(*m, program, a0, a1, a2);
  if (stats != nullptr)
    *stats = m->as.stats();
  leave_mm();
  mm_destroy(m);
  return run;
}

// The four workloads, small, each must exit 0 after demand paging its memory.
bool test_user_process(TestResult& r) {
  mm::BuddyAllocator& buddy = kmem().buddy;
  buddy.drain_this_cpu();
  uint64_t free_before = buddy.free_pages_total();
  mm::AddressSpaceStats st;
  UserRun run = run_fresh(user_touch_seq, 128 << 10, 0, 0, &st);
  if (run.killed || run.exit_code != 0)
    return r.fail("touch_seq exit %ld %s at %lx", run.exit_code, run.cause, run.fault_address);
  if (st.zero_pages_mapped < 32)
    return r.fail("touch_seq mapped %lu pages", st.zero_pages_mapped);
  run = run_fresh(user_touch_random, 64 << 10, 1024, 12345);
  if (run.killed || run.exit_code != 0 || run.report != 1024)
    return r.fail("touch_random exit %ld %s, sum %lu", run.exit_code, run.cause, run.report);
  run = run_fresh(user_churn, 8, 64 << 10, 0);
  if (run.killed || run.exit_code != 0)
    return r.fail("churn exit %ld %s", run.exit_code, run.cause);
  run = run_fresh(user_brk_grow, 64 << 10, 0, 0);
  if (run.killed || run.exit_code != 0)
    return r.fail("brk exit %ld %s", run.exit_code, run.cause);
  buddy.drain_this_cpu();
  uint64_t leaked = free_before - buddy.free_pages_total();
  if (static_cast<int64_t>(leaked) > 64)
    return r.fail("%lu pages not returned", leaked);
  return r.note("%lu faults in touch_seq", st.faults);
}

// A write to the read-only code is a permission fault, a read at 4 KiB a segv; both kill
// only the process.
bool test_user_faults(TestResult& r) {
  UserRun run = run_fresh(user_write_to, kUserCodeBase, 0, 0);
  if (!run.killed || !str_equal(run.cause, "permission"))
    return r.fail("write to code: killed=%d cause '%s'", run.killed, run.cause);
  run = run_fresh(user_read_from, 0x1000, 0, 0);
  if (!run.killed || !str_equal(run.cause, "segv") || run.fault_address != 0x1000)
    return r.fail("read at 0x1000: killed=%d cause '%s' at %lx", run.killed, run.cause,
                  run.fault_address);
  return true;
}

// What CPU 1 runs in parallel with CPU 0 in test_user_parallel.
struct ParallelJob {
  UserRun run;
};

// Body of the work posted to CPU 1.
void run_churn_job(void* arg) {
  static_cast<ParallelJob*>(arg)->run = run_fresh(user_churn, 6, 32 << 10, 0);
}

// Two CPUs run ring-3 churn (mmap, demand faults, munmap) in separate address spaces at the
// same time: both exit 0 and every frame returns to the allocator.
bool test_user_parallel(TestResult& r) {
  if (possible_cpus() < 2)
    return r.skip("needs 2 CPUs");
  mm::BuddyAllocator& buddy = kmem().buddy;
  buddy.drain_all();
  uint64_t free_before = buddy.free_pages_total();
  ParallelJob job;
  if (!smp_call_async(1, run_churn_job, &job))
    return r.fail("cannot post work to CPU 1");
  UserRun mine = run_fresh(user_churn, 6, 32 << 10, 0);
  smp_wait(1);
  if (mine.killed || mine.exit_code != 0)
    return r.fail("CPU 0: exit %ld %s", mine.exit_code, mine.cause);
  if (job.run.killed || job.run.exit_code != 0)
    return r.fail("CPU 1: exit %ld %s", job.run.exit_code, job.run.cause);
  buddy.drain_all();
  int64_t leaked = static_cast<int64_t>(free_before - buddy.free_pages_total());
  if (leaked > 64)
    return r.fail("%ld pages not returned", leaked);
  return r.note("%lu + %lu syscalls", mine.syscalls, job.run.syscalls);
}

}  // namespace

const Selftest kUserSelftests[] = {
    {"user_process", test_user_process},
    {"user_faults", test_user_faults},
    {"user_parallel", test_user_parallel},
    {nullptr, nullptr},
};

}  // namespace hvmm::guest
