// Built-in ring-3 workloads, selectable with `workload=<name>[:<size>][,...]`:
//   touch_seq:<bytes>     touch every page of an mmap'ed area once, verify, munmap
//   touch_random:<bytes>  random page increments over a working set (4 touches per page)
//   churn:<bytes>         256 rounds of mmap + touch + munmap of that size
//   brk:<bytes>           grow the heap with brk, touch it, shrink it
#pragma once

#include <cstdint>

#include "hvmm/guest/process.h"

namespace hvmm::guest {

// Run one workload by name in a fresh address space on the calling CPU; prints one line
// with its result and time. Returns false if it failed or the name is unknown.
bool run_workload(const char* name, uint64_t bytes);

// Run every workload listed in the `workload=` option; returns the number of failures.
unsigned run_workloads_from_cmdline();

}  // namespace hvmm::guest
