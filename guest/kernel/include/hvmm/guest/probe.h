// Kernel memory probes: read a byte that may fault (e.g. a vmalloc guard page) and learn
// whether it did, instead of panicking.
#pragma once

#include "hvmm/guest/arch/trap.h"

namespace hvmm::guest {

// Read one byte at `address`; true if the read faulted.
bool probe_faults(const void* address);

// If `frame` faulted in a probe, redirect it to the probe's fixup and return true.
bool probe_fixup(TrapFrame& frame);

}  // namespace hvmm::guest
