// The files VmOptions names, read or opened into a MachineConfig by make_machine_config():
// the kernel and initrd (regular files, sized before they are read: vmm/boot/input_file.h)
// and the logs and stats file (opened without blocking: vmm/host/log_file.h). Every error
// starts with the field ("kernel: ...", "console_log: '/x' is a FIFO with no reader ...").
// Internal to daemon/options.
#pragma once

#include <span>

#include "hvmm/base/result.h"
#include "hvmm/daemon/options/vm_options.h"
#include "hvmm/vmm/boot/elf_loader.h"

namespace hvmm::daemon::options_detail {

// Read (or take `bundled`) and parse the kernel, then check its placement in config's RAM.
Result<vmm::PvhKernel> load_kernel(const VmOptions& options, std::span<const uint8_t> bundled,
                                   vmm::MachineConfig& config);

// Size and place the initrd from fstat() before reading a byte of it.
Result<void> load_initrd(const VmOptions& options, const vmm::PvhKernel& kernel,
                         vmm::MachineConfig& config);

// Open the fault log (appended to), the console log and the stats file (truncated).
Result<void> open_logs(const VmOptions& options, vmm::MachineConfig& config);

}  // namespace hvmm::daemon::options_detail
