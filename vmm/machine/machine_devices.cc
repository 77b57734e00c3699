// The Machine's devices: buses, the virtio devices with their windows, irqfds and
// ioeventfds, and the event thread.
#include "hvmm/vmm/machine/machine_devices.h"

#include <fmt/format.h>

#include "hvmm/vmm/machine/exit_status.h"

namespace hvmm::vmm {
namespace {

// Interrupts through a KVM irqfd: one eventfd write per edge.
class IrqFdInterrupt final : public virtio::VirtioInterrupt {
 public:
  explicit IrqFdInterrupt(KvmIrqFd irqfd) : irqfd_(std::move(irqfd)) {}
  void raise() override { irqfd_.trigger(); }

 private:
  KvmIrqFd irqfd_;
};

// Interrupts by KVM_IRQ_LINE, raised then lowered (an edge), where irqfd is unavailable.
class IrqLineInterrupt final : public virtio::VirtioInterrupt {
 public:
  IrqLineInterrupt(KvmVm& vm, uint32_t irq) : vm_(vm), irq_(irq) {}
  void raise() override {
    [[maybe_unused]] auto up = vm_.set_irq_line(irq_, true);
    [[maybe_unused]] auto down = vm_.set_irq_line(irq_, false);
  }

 private:
  KvmVm& vm_;
  uint32_t irq_;
};

// Device log lines go to stderr, prefixed like the VMM's own.
void log_device(const std::string& line) {
  fmt::print(stderr, "hvmm: {}\n", line);
}

}  // namespace

// Stop the event thread before the transports it calls go away.
MachineDevices::~MachineDevices() {
  stop();
}

// The fixed ports, then each configured virtio device in slot order.
Result<std::unique_ptr<MachineDevices>> MachineDevices::create(
    const DeviceConfig& config, const Kvm& kvm, KvmVm& vm, GuestPhysical& physical, Uart16550& uart,
    std::function<void(uint8_t)> on_exit) {
  auto devices = std::make_unique<MachineDevices>(vm, physical);
  devices->exit_port_ = std::make_unique<ExitPort>(std::move(on_exit));
  HVMM_TRY(devices->ports_.add(kCom1Base, 8, "COM1", uart));
  HVMM_TRY(devices->ports_.add(kExitPort, 1, "exit port", *devices->exit_port_));
  const bool irqfd = kvm.check_extension(KVM_CAP_IRQFD) > 0;
  const bool ioeventfd = kvm.check_extension(KVM_CAP_IOEVENTFD) > 0;
  if (config.balloon) {
    std::vector<IpaRange> ram;
    for (const RamRegion& region : physical.ram()) {
      ram.push_back(region.range);
    }
    devices->balloon_backend_ = std::make_unique<GuestPhysicalBalloonBackend>(physical, log_device);
    devices->balloon_ = std::make_unique<BalloonDevice>(
        *devices->balloon_backend_, std::move(ram),
        BalloonOptions{config.balloon_target / kPageSize, config.free_page_reporting});
    HVMM_TRY(devices->add_virtio(*devices->balloon_, irqfd, ioeventfd));
    if (config.balloon_stats_interval.count() > 0) {
      BalloonDevice* balloon = devices->balloon_.get();
      HVMM_TRY(devices->events_.add_timer(config.balloon_stats_interval,
                                          [balloon] { balloon->request_stats(); }));
    }
  }
  if (config.control_channel) {
    devices->control_ = std::make_unique<ControlChannel>();
    HVMM_TRY(devices->add_virtio(*devices->control_, irqfd, ioeventfd));
  }
  return devices;
}

// Give `device` the next window and IRQ, its interrupt, its transport and its notifiers.
Result<void> MachineDevices::add_virtio(virtio::VirtioDevice& device, bool use_irqfd,
                                        bool use_ioeventfd) {
  auto slot = virtio::mmio_slot(static_cast<unsigned>(virtio_.size()));
  HVMM_TRY(slot);
  VirtioSlot entry{*slot, nullptr, nullptr, {}};
  if (use_irqfd) {
    auto irqfd = KvmIrqFd::assign(vm_, slot->irq);
    if (irqfd) {
      entry.interrupt = std::make_unique<IrqFdInterrupt>(std::move(*irqfd));
      irqfd_active_ = true;
    }
  }
  if (!entry.interrupt) {
    entry.interrupt = std::make_unique<IrqLineInterrupt>(vm_, slot->irq);
  }
  const std::string name = fmt::format("{}@{:#x}", device.name(), slot->window.start.value());
  entry.transport = std::make_unique<virtio::MmioTransport>(name, device, physical_,
                                                            *entry.interrupt, log_device);
  HVMM_TRY(mmio_.add(slot->window.start.value(), slot->window.size, name, *entry.transport));
  if (use_ioeventfd) {
    HVMM_TRY(add_notifiers(entry, device));
  }
  slots_.push_back(*slot);
  virtio_.push_back(std::move(entry));
  return Ok();
}

// One ioeventfd per queue on QueueNotify; if KVM refuses one, the MMIO exit path serves all.
Result<void> MachineDevices::add_notifiers(VirtioSlot& slot, virtio::VirtioDevice& device) {
  const unsigned queues = device.queue_count(device.offered_features());
  const Ipa notify = slot.slot.window.start + virtio::kRegQueueNotify;
  for (unsigned queue = 0; queue < queues; ++queue) {
    auto event = KvmIoEventFd::assign(vm_, notify, 4, queue);
    if (!event) {
      slot.notifiers.clear();
      return Ok();
    }
    slot.notifiers.push_back(std::move(*event));
  }
  virtio::MmioTransport* transport = slot.transport.get();
  for (unsigned queue = 0; queue < queues; ++queue) {
    const KvmIoEventFd* event = &slot.notifiers[queue];
    events_.add_fd(event->fd(), [transport, event, queue] {
      if (event->drain() != 0) {
        transport->notify(queue);
      }
    });
  }
  ioeventfd_active_ = true;
  return Ok();
}

// Serve the ioeventfds and timers from now on.
Result<void> MachineDevices::start() {
  return events_.start();
}

// No more device events; callers of the control channel get an error.
void MachineDevices::stop() {
  events_.stop();
  if (control_) {
    control_->shut_down();
  }
}

}  // namespace hvmm::vmm
