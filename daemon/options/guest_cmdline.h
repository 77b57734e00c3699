// The command line a guest gets: the configured one plus one virtio-mmio announcement per
// device (`virtio_mmio.device=4K@0xd0000000:5`, appended by the Machine), checked against the
// boot data's slot before any VM exists.
#pragma once

#include <string>

#include "hvmm/base/result.h"
#include "hvmm/vmm/machine/machine_config.h"

namespace hvmm::daemon {

// Check that `cmdline` fits the boot data once the announcements of `devices` are added to
// it. Errors start with "cmdline: " and say how many bytes are the user's to use.
Result<void> check_guest_cmdline(const std::string& cmdline, const vmm::DeviceConfig& devices);

}  // namespace hvmm::daemon
