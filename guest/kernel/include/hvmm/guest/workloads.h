// Built-in ring-3 workloads, selectable with `workload=<name>[:<size>][,...]`:
//   touch_seq:<bytes>       touch every page of an mmap'ed area once, verify, munmap
//   touch_random:<bytes>    random page increments over a working set (4 touches per page)
//   churn:<bytes>           256 rounds of mmap + touch + munmap of that size
//   brk:<bytes>             grow the heap with brk, touch it, shrink it
//   pattern_seq:<bytes>     write the seeded pattern to every page in order, check it, exit
//   pattern_random:<bytes>  the same, pages in a seeded random order (seed from `seed=`)
//   pattern_mix:<bytes>     the page mix of hvmm/base/pattern_mix.h (zero, text-like and
//                           random pages), in page order, check it, exit
//
// The pattern workloads are also what the control channel starts (kWorkloadStart): word i
// of page p is h(p) + i with h(p) = splitmix64(seed + (p + 1) * 0x9e3779b97f4a7c15), and
// the checksum folds every word in page order with FNV-1a over 64-bit words, so a host can
// recompute both (the mix has its own words, hvmm/base/pattern_mix.h, and the same
// checksum fold). A pattern workload may be held: its address space stays (parked, no
// program running) so that it can be verified again later or destroyed on request.
#pragma once

#include <cstdint>

#include "hvmm/guest/process.h"

namespace hvmm::guest {

// Run one workload by name in a fresh address space on the calling CPU; prints one line
// with its result and time. Returns false if it failed or the name is unknown.
bool run_workload(const char* name, uint64_t bytes);

// Run every workload listed in the `workload=` option; returns the number of failures.
unsigned run_workloads_from_cmdline();

// Which contents a pattern workload writes, and in which order.
enum class PatternKind : uint8_t {
  kSequential,  // the pattern, pages in order
  kRandom,      // the pattern, pages in a seeded random order
  kMix,         // the page mix of hvmm/base/pattern_mix.h, pages in order
};

// What a pattern workload writes: `pages` pages from a fresh area, of `kind`, with `seed`.
struct PatternSpec {
  PatternKind kind = PatternKind::kSequential;
  uint64_t pages = 0;
  uint64_t seed = 0;
};

// How a pattern run (touch or verify) ended.
enum class PatternOutcome {
  kOk,        // every page holds the pattern
  kMismatch,  // mismatched_pages pages differ from it
  kNoMemory,  // no memory for the address space, the area or a demand fault
  kKilled,    // the program died for another reason (run.cause)
};

// What a pattern run measured.
struct PatternResult {
  PatternOutcome outcome = PatternOutcome::kOk;
  uint64_t pages = 0;             // pages written or checked
  uint64_t mismatched_pages = 0;  // pages whose contents differ from the pattern
  uint64_t checksum = 0;          // over every word read back, in page order
  uint64_t duration_tsc = 0;      // ring-3 run, from entry to exit
  unsigned cpu = 0;               // the CPU it ran on
  UserRun run;
};

// A held pattern workload: its parked address space and where its pattern lives.
struct HeldWorkload {
  uint32_t id = 0;  // 0: the slot is free
  UserMm* mm = nullptr;
  uint64_t base = 0;  // user address of page 0 of the pattern
  PatternSpec spec;
};

// Held workloads at most; starting one more with hold answers busy.
inline constexpr unsigned kMaxHeldWorkloads = 8;

// The user address of the pattern area in every pattern workload's address space.
inline constexpr uint64_t kPatternBase = 0x100000000ull;

// The largest pattern workload (bytes): far below the user half, far above any guest RAM.
inline constexpr uint64_t kPatternMaxBytes = uint64_t{1} << 40;

// Run a pattern workload in a fresh address space on the calling CPU. With `held` non-null
// the address space is kept and *held names it (id 0 until the caller adds it to the table
// with pattern_hold); otherwise it is destroyed and its memory freed before returning.
PatternResult pattern_start(const PatternSpec& spec, HeldWorkload* held);

// Re-read every page of a held workload in ring 3, in its own address space, and compare
// it with the pattern (or the mix).
PatternResult pattern_verify(const HeldWorkload& held);

// What a rewrite asks for: pages [first_page, first_page + pages) of a held workload,
// written again with its own contents (or only read), round after round for duration_tsc.
struct RewriteSpec {
  uint64_t first_page = 0;
  uint64_t pages = 0;
  uint64_t duration_tsc = 0;
  bool read_only = false;
};

// How a rewrite ended: rounds over the range, and the outcome (kNoMemory when a demand
// fault of a page the host took back found no memory, kKilled otherwise).
struct RewriteResult {
  PatternOutcome outcome = PatternOutcome::kOk;
  uint64_t rounds = 0;
  uint64_t duration_tsc = 0;
};

// Run the rewrite program over a range inside a held workload, in ring 3 in its address
// space (the caller checks the range).
RewriteResult pattern_rewrite(const HeldWorkload& held, const RewriteSpec& spec);

// True if one more workload can be held.
bool pattern_can_hold();

// Put a started workload in the table and give it a fresh non-zero id (0 if the table is
// full: the caller then destroys it with pattern_discard).
uint32_t pattern_hold(const HeldWorkload& held);

// The held workload with id `id`, or null. Ids are never reused.
HeldWorkload* pattern_find(uint32_t id);

// Destroy a held workload (in the table or not yet added) and free its memory.
void pattern_discard(HeldWorkload& held);

// Pages mapped in the address spaces of all held workloads.
uint64_t pattern_held_pages();

// The checksum of `pages` pages holding the pattern of `seed`, computed in ring 0 (for
// selftests; a few instructions per word, so keep `pages` small).
uint64_t pattern_reference_checksum(uint64_t seed, uint64_t pages);

}  // namespace hvmm::guest
