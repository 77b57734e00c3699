// The workload launcher: parse `workload=`, create an address space per workload, run the
// ring-3 program and report exit status, faults, resident pages and time.
#include "hvmm/guest/workloads.h"

#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/cmdline.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/runtime.h"
#include "hvmm/guest/time.h"

extern "C" char user_touch_seq[], user_touch_random[], user_churn[], user_brk_grow[];

namespace hvmm::guest {
namespace {

// One entry of the workload table: the program and how to derive its arguments.
struct Workload {
  const char* name;
  const char* program;
  uint64_t default_bytes;
};

const Workload kWorkloads[] = {
    {"touch_seq", user_touch_seq, 16 << 20},
    {"touch_random", user_touch_random, 16 << 20},
    {"churn", user_churn, 64 << 10},
    {"brk", user_brk_grow, 4 << 20},
};

// The three program arguments of a workload for `bytes`.
void workload_args(const Workload& w, uint64_t bytes, uint64_t* a) {
  a[0] = bytes;
  a[1] = a[2] = 0;
  if (w.program == user_touch_random)
    a[1] = (bytes >> 12) * 4, a[2] = arch::rdtsc();
  if (w.program == user_churn)
    a[0] = 256, a[1] = bytes;
}

// Run a pattern workload from the command line (seed from `seed=`, default 1) and print
// its result line.
bool run_pattern_workload(const char* name, PatternKind kind, uint64_t bytes) {
  if (bytes == 0)
    bytes = 16 << 20;
  PatternSpec spec{kind, (bytes + kPageSize - 1) >> kPageShift, cmdline_get_number("seed", 1)};
  PatternResult r = pattern_start(spec, nullptr);
  bool ok = r.outcome == PatternOutcome::kOk;
  printk("workload %s: %s %lu pages, %lu mismatched, checksum %016lx, cpu %u, %lu us%s%s\n", name,
         ok ? "ok" : "FAILED", r.pages, r.mismatched_pages, r.checksum, r.cpu,
         tsc_to_us(r.duration_tsc), r.run.killed ? ", killed: " : "", r.run.cause);
  return ok;
}

}  // namespace

// Look the workload up, run it in a fresh address space and print one result line.
bool run_workload(const char* name, uint64_t bytes) {
  if (str_equal(name, "pattern_seq"))
    return run_pattern_workload(name, PatternKind::kSequential, bytes);
  if (str_equal(name, "pattern_random"))
    return run_pattern_workload(name, PatternKind::kRandom, bytes);
  if (str_equal(name, "pattern_mix"))
    return run_pattern_workload(name, PatternKind::kMix, bytes);
  for (const Workload& w : kWorkloads) {
    if (!str_equal(name, w.name))
      continue;
    if (bytes == 0)
      bytes = w.default_bytes;
    UserMm* m = mm_create();
    if (m == nullptr) {
      printk("workload %s: FAILED no memory for an address space\n", name);
      return false;
    }
    uint64_t a[3];
    workload_args(w, bytes, a);
    uint64_t t0 = arch::rdtsc();
    UserRun run = run_user(*m, w.program, a[0], a[1], a[2]);
    uint64_t us = tsc_to_us(arch::rdtsc() - t0);
    mm::AddressSpaceStats st = m->as.stats();
    leave_mm();
    mm_destroy(m);
    bool ok = !run.killed && run.exit_code == 0;
    uint64_t fault_us = tsc_to_us(run.fault_tsc);
    printk(
        "workload %s: %s exit %ld%s%s, %lu KiB, %lu faults (%lu us each, %lu in mm), "
        "%lu syscalls, %lu us\n",
        name, ok ? "ok" : "FAILED", run.exit_code, run.killed ? " killed: " : "", run.cause,
        bytes >> 10, st.faults, st.faults ? us / st.faults : 0,
        st.faults ? fault_us / st.faults : 0, run.syscalls, us);
    return ok;
  }
  printk("workload %s: FAILED unknown workload\n", name);
  return false;
}

// Split the option at commas; each item is name[:size].
unsigned run_workloads_from_cmdline() {
  char list[256];
  if (!cmdline_get("workload", list, sizeof(list)))
    return 0;
  unsigned failures = 0;
  char* p = list;
  while (*p != '\0') {
    char* item = p;
    while (*p != ',' && *p != '\0')
      ++p;
    if (*p == ',')
      *p++ = '\0';
    uint64_t bytes = 0;
    for (char* c = item; *c != '\0'; ++c) {
      if (*c != ':')
        continue;
      *c = '\0';
      if (!parse_number(c + 1, &bytes))
        bytes = 0;
      break;
    }
    if (!run_workload(item, bytes))
      ++failures;
  }
  return failures;
}

}  // namespace hvmm::guest
