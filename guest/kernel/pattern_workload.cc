// Pattern workloads: a fresh address space with one area at kPatternBase, a ring-3 program
// that writes the seeded pattern (workloads.S) and reads it back, and the table of held
// workloads whose address spaces stay parked between requests. Called by one CPU at a time
// (the one serving the control channel, or the boot CPU's command-line work).
#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/workloads.h"

extern "C" char user_pattern_touch_seq[], user_pattern_touch_random[], user_pattern_verify[],
    user_pattern_touch_mix[], user_pattern_verify_mix[], user_pattern_rewrite_seq[],
    user_pattern_rewrite_mix[], user_pattern_reread[];

namespace hvmm::guest {
namespace {

HeldWorkload g_held[kMaxHeldWorkloads];
uint32_t g_next_id = 1;

// The outcome of a finished ring-3 run over the pattern area [base, base + pages pages):
// a kill by segv inside the area is a demand fault that found no memory.
PatternOutcome outcome_of(const UserRun& run, uint64_t base, uint64_t pages) {
  if (run.killed) {
    bool in_area = run.fault_address >= base && run.fault_address - base < pages * kPageSize;
    return in_area && run.exit_code == kKilledSegv ? PatternOutcome::kNoMemory
                                                   : PatternOutcome::kKilled;
  }
  return run.exit_code == 0 ? PatternOutcome::kOk : PatternOutcome::kMismatch;
}

// Run `program` over the pattern of `spec` at `base` in `m` on this CPU and collect what
// it reported (checksum) and returned (mismatched pages).
PatternResult run_pattern(UserMm& m, const char* program, uint64_t base, const PatternSpec& spec) {
  PatternResult r;
  r.cpu = this_cpu().cpu;
  r.pages = spec.pages;
  uint64_t t0 = arch::rdtsc();
  r.run = run_user(m, program, base, spec.pages, spec.seed);
  r.duration_tsc = arch::rdtsc() - t0;
  leave_mm();
  r.outcome = outcome_of(r.run, base, spec.pages);
  if (!r.run.killed) {
    r.checksum = r.run.report;
    r.mismatched_pages = static_cast<uint64_t>(r.run.exit_code);
  }
  return r;
}

// The program that writes the contents of `kind` and checks them.
const char* touch_program(PatternKind kind) {
  switch (kind) {
    case PatternKind::kSequential:
      break;
    case PatternKind::kRandom:
      return user_pattern_touch_random;
    case PatternKind::kMix:
      return user_pattern_touch_mix;
  }
  return user_pattern_touch_seq;
}

// splitmix64's output function: the per-page base of the pattern (as in workloads.S).
uint64_t pattern_page_base(uint64_t seed, uint64_t page) {
  uint64_t z = seed + (page + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

// Create the address space, map the area, run the touch program, keep or destroy.
PatternResult pattern_start(const PatternSpec& spec, HeldWorkload* held) {
  PatternResult r;
  r.pages = spec.pages;
  r.outcome = PatternOutcome::kNoMemory;
  UserMm* m = mm_create();
  if (m == nullptr)
    return r;
  mm::MmResult area;
  {
    mm::SpinGuard guard(m->lock);
    area = m->as.mmap(VirtAddr(kPatternBase), spec.pages * kPageSize, mm::kVmRead | mm::kVmWrite,
                      true);
  }
  if (area.ok)
    r = run_pattern(*m, touch_program(spec.kind), kPatternBase, spec);
  if (held != nullptr && area.ok && r.outcome == PatternOutcome::kOk) {
    *held = HeldWorkload{0, m, kPatternBase, spec};
    return r;
  }
  mm_destroy(m);
  return r;
}

// Run the check program of the workload's contents in the held address space.
PatternResult pattern_verify(const HeldWorkload& held) {
  const bool mix = held.spec.kind == PatternKind::kMix;
  return run_pattern(*held.mm, mix ? user_pattern_verify_mix : user_pattern_verify, held.base,
                     held.spec);
}

// The rewrite programs find the area at the fixed kPatternBase (workloads.S: they get only
// three registers), so every held workload must live there, and a range's first page and
// length must each fit 32 bits of one register.
static_assert(kPatternBase == 0x100000000ull);
static_assert((kPatternMaxBytes >> kPageShift) <= UINT32_MAX);

// One ring-3 run of the rewrite (or reread) program until the deadline.
RewriteResult pattern_rewrite(const HeldWorkload& held, const RewriteSpec& spec) {
  const char* program = spec.read_only                        ? user_pattern_reread
                        : held.spec.kind == PatternKind::kMix ? user_pattern_rewrite_mix
                                                              : user_pattern_rewrite_seq;
  RewriteResult r;
  const uint64_t t0 = arch::rdtsc();
  UserRun run = run_user(*held.mm, program, held.spec.seed, spec.first_page | (spec.pages << 32),
                         t0 + spec.duration_tsc);
  r.duration_tsc = arch::rdtsc() - t0;
  leave_mm();
  r.outcome = outcome_of(run, held.base, held.spec.pages);
  if (r.outcome == PatternOutcome::kOk)
    r.rounds = run.report;
  return r;
}

// A free slot exists.
bool pattern_can_hold() {
  for (const HeldWorkload& h : g_held)
    if (h.id == 0)
      return true;
  return false;
}

// Take the first free slot; ids count up from 1 and are never reused.
uint32_t pattern_hold(const HeldWorkload& held) {
  for (HeldWorkload& h : g_held) {
    if (h.id != 0)
      continue;
    h = held;
    h.id = g_next_id++;
    return h.id;
  }
  return 0;
}

// Linear search of a table of kMaxHeldWorkloads slots.
HeldWorkload* pattern_find(uint32_t id) {
  if (id == 0)
    return nullptr;
  for (HeldWorkload& h : g_held)
    if (h.id == id)
      return &h;
  return nullptr;
}

// Destroy the address space (every CPU drops it first, see mm_destroy) and free the slot.
void pattern_discard(HeldWorkload& held) {
  if (held.mm != nullptr)
    mm_destroy(held.mm);
  held = HeldWorkload{};
}

// Resident pages of every held address space (pattern, stack and any other demand pages).
uint64_t pattern_held_pages() {
  uint64_t pages = 0;
  for (const HeldWorkload& h : g_held)
    if (h.id != 0)
      pages += h.mm->as.stats().resident_pages;
  return pages;
}

// The same fold as pattern_check in workloads.S.
uint64_t pattern_reference_checksum(uint64_t seed, uint64_t pages) {
  uint64_t c = 0xcbf29ce484222325ull;
  for (uint64_t p = 0; p < pages; ++p) {
    uint64_t base = pattern_page_base(seed, p);
    for (uint64_t i = 0; i < kPageSize / 8; ++i)
      c = (c ^ (base + i)) * 0x100000001b3ull;
  }
  return c;
}

}  // namespace hvmm::guest
