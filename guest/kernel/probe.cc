// Probes: a single faulting instruction (probe_read_insn in entry.S) whose #PF resumes at
// a fixup that returns 1.
#include "hvmm/guest/probe.h"

#include <cstdint>

extern "C" bool probe_read_asm(const void* address);
extern "C" char probe_read_insn[], probe_fixup_target[];

namespace hvmm::guest {

// Read one byte through the probe instruction.
bool probe_faults(const void* address) {
  return probe_read_asm(address);
}

// Only faults raised by the probe instruction itself are fixed up.
bool probe_fixup(TrapFrame& frame) {
  if (frame.rip != reinterpret_cast<uint64_t>(probe_read_insn))
    return false;
  frame.rip = reinterpret_cast<uint64_t>(probe_fixup_target);
  return true;
}

}  // namespace hvmm::guest
