// `hvmm run`: validate the options (files read, logs opened) before /dev/kvm is opened, then
// create the VM and run it in this process, mapping each failure to its documented status
// (vmm/machine/exit_status.h). Errors are printed in flag terms (flag_names.h).
#pragma once

#include <cstdint>
#include <span>

#include "hvmm/daemon/cli/run_flags.h"

namespace hvmm::cli {

// Run the VM `flags` describe; returns the process exit status.
int run_vm(const RunFlags& flags, std::span<const uint8_t> bundled_kernel);

}  // namespace hvmm::cli
