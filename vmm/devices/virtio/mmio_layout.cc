// virtio-mmio windows and IRQs, checked against the machine's fixed devices.
#include "hvmm/vmm/devices/virtio/mmio_layout.h"

#include <fmt/format.h>

#include "hvmm/vmm/devices/serial/uart.h"
#include "hvmm/vmm/devices/virtio/fixed_mmio.h"
#include "hvmm/vmm/memory/memory_layout.h"

namespace hvmm::vmm::virtio {
namespace {

constexpr uint32_t kIoapicPins = 24;

}  // namespace

// Window `index` from the base, IRQ `index` from the first, each checked.
Result<MmioSlot> mmio_slot(unsigned index) {
  if (index >= kMaxMmioDevices) {
    return make_error(ErrorCode::kResourceExhausted, "no virtio-mmio slot {} (at most {})", index,
                      kMaxMmioDevices);
  }
  MmioSlot slot{{Ipa(kMmioWindowBase + index * kMmioWindowSize), kMmioWindowSize},
                kFirstIrq + index};
  if (slot.window.start.value() < kMmioHoleStart || slot.window.end().value() > kMmioHoleEnd) {
    return make_error(ErrorCode::kInternal, "virtio-mmio window {} is outside the MMIO hole",
                      slot.window);
  }
  for (const FixedMmio& reserved : kFixedMmio) {
    if (slot.window.overlaps(reserved.range)) {
      return make_error(ErrorCode::kInternal, "virtio-mmio window {} overlaps the {}", slot.window,
                        reserved.name);
    }
  }
  if (slot.irq == 0 || slot.irq == kCom1Irq || slot.irq >= kIoapicPins) {
    return make_error(ErrorCode::kInternal,
                      "virtio-mmio IRQ {} collides with IRQ 0, COM1 or "
                      "is past the IOAPIC's pins",
                      slot.irq);
  }
  return slot;
}

// Append the Linux `virtio_mmio.device=<size>@<base>:<irq>` parameters.
std::string announce_on_cmdline(const std::string& cmdline, const std::vector<MmioSlot>& slots) {
  std::string out = cmdline;
  for (const MmioSlot& slot : slots) {
    if (!out.empty()) {
      out += ' ';
    }
    out += fmt::format("virtio_mmio.device={}K@{:#x}:{}", slot.window.size / 1024,
                       slot.window.start.value(), slot.irq);
  }
  return out;
}

}  // namespace hvmm::vmm::virtio
