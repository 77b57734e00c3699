// MachineDevices: every device of one Machine, on its two buses.
//
// Port I/O: COM1 (0x3f8, 8 ports) and the exit port (0xf4). MMIO: one virtio-mmio window per
// virtio device (the balloon, then the control channel, each only when configured), from
// 0xd0000000 with IRQs from 5. Each virtio device interrupts through a KVM irqfd on its GSI
// (KVM_IRQ_LINE pulses when irqfd is unavailable) and is notified through one ioeventfd per
// queue on its QueueNotify register (datamatch = queue index), served by one event thread;
// without ioeventfd the QueueNotify write exits to the VMM and is handled on the vCPU thread.
// What no device claims is left to the Machine (its fault path).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hvmm/vmm/devices/balloon/balloon_device.h"
#include "hvmm/vmm/devices/bus.h"
#include "hvmm/vmm/devices/control/control_channel.h"
#include "hvmm/vmm/devices/exit_port.h"
#include "hvmm/vmm/devices/serial/uart.h"
#include "hvmm/vmm/devices/virtio/device_events.h"
#include "hvmm/vmm/devices/virtio/mmio_layout.h"
#include "hvmm/vmm/devices/virtio/mmio_transport.h"
#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/machine/guest_physical_balloon_backend.h"
#include "hvmm/vmm/machine/machine_config.h"
#include "hvmm/vmm/memory/guest_physical.h"

namespace hvmm::vmm {

class MachineDevices {
 public:
  // Build the devices of `config` for `vm`; `on_exit` gets the exit port's byte.
  static Result<std::unique_ptr<MachineDevices>> create(const DeviceConfig& config, const Kvm& kvm,
                                                        KvmVm& vm, GuestPhysical& physical,
                                                        Uart16550& uart,
                                                        std::function<void(uint8_t)> on_exit);
  // An empty set of devices for `vm`; create() fills it.
  MachineDevices(KvmVm& vm, GuestPhysical& physical) : vm_(vm), physical_(physical) {}
  MachineDevices(const MachineDevices&) = delete;
  MachineDevices& operator=(const MachineDevices&) = delete;
  ~MachineDevices();

  // Start the event thread (ioeventfds, stats timer).
  Result<void> start();
  // Stop the event thread and fail waiting control calls; before the vCPUs' host goes away.
  void stop();

  const Bus& ports() const { return ports_; }
  const Bus& mmio() const { return mmio_; }
  // The windows to announce on the command line, in device order.
  const std::vector<virtio::MmioSlot>& slots() const { return slots_; }
  BalloonDevice* balloon() { return balloon_.get(); }
  // The balloon's backend (its release counters and times), or nullptr without a balloon.
  GuestPhysicalBalloonBackend* balloon_backend() { return balloon_backend_.get(); }
  ControlChannel* control() { return control_.get(); }
  // The transport of virtio device `index` (slots() order).
  virtio::MmioTransport& transport(size_t index) { return *virtio_[index].transport; }
  size_t virtio_count() const { return virtio_.size(); }
  // Whether notifications arrive by ioeventfd (else by MMIO exit), interrupts by irqfd.
  bool ioeventfd_active() const { return ioeventfd_active_; }
  bool irqfd_active() const { return irqfd_active_; }

 private:
  // One virtio device with its window, interrupt and notifications.
  struct VirtioSlot {
    virtio::MmioSlot slot;
    std::unique_ptr<virtio::VirtioInterrupt> interrupt;
    std::unique_ptr<virtio::MmioTransport> transport;
    std::vector<KvmIoEventFd> notifiers;
  };
  Result<void> add_virtio(virtio::VirtioDevice& device, bool use_irqfd, bool use_ioeventfd);
  Result<void> add_notifiers(VirtioSlot& slot, virtio::VirtioDevice& device);

  KvmVm& vm_;
  GuestPhysical& physical_;
  Bus ports_{"port I/O"};
  Bus mmio_{"MMIO"};
  std::unique_ptr<ExitPort> exit_port_;
  std::unique_ptr<GuestPhysicalBalloonBackend> balloon_backend_;
  std::unique_ptr<BalloonDevice> balloon_;
  std::unique_ptr<ControlChannel> control_;
  std::vector<virtio::MmioSlot> slots_;
  std::vector<VirtioSlot> virtio_;  // after the devices: destroyed before them
  virtio::DeviceEvents events_;
  bool ioeventfd_active_ = false;
  bool irqfd_active_ = false;
};

}  // namespace hvmm::vmm
