// Fault handling glue between the exception entry and the memory-management code.
#pragma once

#include <cstdint>

#include "hvmm/guest/arch/trap.h"

namespace hvmm::guest {

// Handle #PF at `address`: demand paging for user VMAs, a reported permission fault or SEGV
// for the user process, a panic for kernel faults (unless a fault probe is armed).
void handle_page_fault(TrapFrame& frame, uint64_t address);

// User page faults resolved by mapping a zero page (minor faults) since boot, all CPUs.
uint64_t user_minor_faults();

// End the current user process after a fatal fault and return to its starter.
[[noreturn]] void kill_user_process(TrapFrame& frame, const char* cause);

}  // namespace hvmm::guest
