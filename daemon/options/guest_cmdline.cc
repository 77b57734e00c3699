// The guest's command line with the virtio-mmio announcements, against the boot data slot.
#include "hvmm/daemon/options/guest_cmdline.h"

#include <vector>

#include "hvmm/daemon/options/field_names.h"
#include "hvmm/vmm/boot/boot_data.h"
#include "hvmm/vmm/devices/virtio/mmio_layout.h"

namespace hvmm::daemon {

// The user's line (length, NUL), then the line the guest gets: the user's plus one
// announcement per virtio device, in the Machine's device order (balloon, control channel).
Result<void> check_guest_cmdline(const std::string& cmdline, const vmm::DeviceConfig& devices) {
  HVMM_TRY(vmm::check_cmdline(cmdline));
  std::vector<vmm::virtio::MmioSlot> slots;
  const unsigned count = (devices.balloon ? 1u : 0u) + (devices.control_channel ? 1u : 0u);
  for (unsigned index = 0; index < count; ++index) {
    auto slot = vmm::virtio::mmio_slot(index);
    HVMM_TRY(slot);
    slots.push_back(*slot);
  }
  const std::string guest = vmm::virtio::announce_on_cmdline(cmdline, slots);
  if (guest.size() + 1 > vmm::kMaxCmdlineBytes) {
    const size_t appended = guest.size() - cmdline.size();
    return make_error(ErrorCode::kInvalidArgument,
                      "{}: {} bytes long; hvmm appends {} bytes announcing its virtio devices "
                      "(virtio_mmio.device=...), so at most {} bytes fit",
                      field::kCmdline, cmdline.size(), appended,
                      vmm::kMaxCmdlineBytes - 1 - appended);
  }
  return Ok();
}

}  // namespace hvmm::daemon
