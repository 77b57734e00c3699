// MmioTransport: the virtio-mmio version 2 register window of one device (OASIS virtio 1.2,
// section 4.2.2), a BusDevice on the MMIO bus.
//
// It negotiates features (VERSION_1 is required; only offered bits are accepted), runs the
// status state machine (ACKNOWLEDGE → DRIVER → FEATURES_OK → DRIVER_OK; 0 resets), programs
// the queues, serves the config space with its generation counter and the interrupt
// status/acknowledge pair, and turns QueueNotify (an MMIO exit or an ioeventfd, see
// notify()) into the device's process_queue(). Every register access is untrusted: a
// register access that is not 32 bits wide and aligned, a write to a read-only register, a
// queue register written for an absent or enabled queue, a status that clears bits or skips
// a step, a malformed queue or config write puts the device in NEEDS_RESET (status 0x40 and
// a config-change interrupt): the reason is logged once (until the driver resets the
// device), every case is counted, and the device ignores its queues until the reset.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hvmm/vmm/devices/bus.h"
#include "hvmm/vmm/devices/virtio/queue.h"
#include "hvmm/vmm/devices/virtio/virtio_device.h"

namespace hvmm::vmm::virtio {

// Register offsets of the virtio-mmio v2 window.
inline constexpr uint64_t kRegMagic = 0x000;
inline constexpr uint64_t kRegVersion = 0x004;
inline constexpr uint64_t kRegDeviceId = 0x008;
inline constexpr uint64_t kRegVendorId = 0x00c;
inline constexpr uint64_t kRegDeviceFeatures = 0x010;
inline constexpr uint64_t kRegDeviceFeaturesSel = 0x014;
inline constexpr uint64_t kRegDriverFeatures = 0x020;
inline constexpr uint64_t kRegDriverFeaturesSel = 0x024;
inline constexpr uint64_t kRegQueueSel = 0x030;
inline constexpr uint64_t kRegQueueNumMax = 0x034;
inline constexpr uint64_t kRegQueueNum = 0x038;
inline constexpr uint64_t kRegQueueReady = 0x044;
inline constexpr uint64_t kRegQueueNotify = 0x050;
inline constexpr uint64_t kRegInterruptStatus = 0x060;
inline constexpr uint64_t kRegInterruptAck = 0x064;
inline constexpr uint64_t kRegStatus = 0x070;
inline constexpr uint64_t kRegQueueDescLow = 0x080;
inline constexpr uint64_t kRegQueueDescHigh = 0x084;
inline constexpr uint64_t kRegQueueDriverLow = 0x090;
inline constexpr uint64_t kRegQueueDriverHigh = 0x094;
inline constexpr uint64_t kRegQueueDeviceLow = 0x0a0;
inline constexpr uint64_t kRegQueueDeviceHigh = 0x0a4;
inline constexpr uint64_t kRegConfigGeneration = 0x0fc;
inline constexpr uint64_t kRegConfig = 0x100;

inline constexpr uint32_t kMmioMagic = 0x74726976;  // "virt"
inline constexpr uint32_t kMmioVersion = 2;
inline constexpr uint32_t kVendorId = 0x4d4d5648;  // "HVMM"

// Device status bits.
inline constexpr uint32_t kStatusAcknowledge = 1;
inline constexpr uint32_t kStatusDriver = 2;
inline constexpr uint32_t kStatusDriverOk = 4;
inline constexpr uint32_t kStatusFeaturesOk = 8;
inline constexpr uint32_t kStatusNeedsReset = 0x40;
inline constexpr uint32_t kStatusFailed = 0x80;

// Interrupt status bits.
inline constexpr uint32_t kInterruptUsedBuffer = 1;
inline constexpr uint32_t kInterruptConfigChange = 2;

// The device features every transport adds to its device's.
inline constexpr uint64_t kTransportFeatures =
    feature(kFeatureVersion1) | feature(kFeatureIndirectDesc);

class MmioTransport final : public BusDevice, private VirtioContext {
 public:
  using Logger = std::function<void(const std::string&)>;

  // Carry `device` (attached here), reach the guest through `memory`, interrupt through
  // `interrupt`; `name` prefixes log lines ("virtio-balloon@0xd0000000").
  MmioTransport(std::string name, VirtioDevice& device, GuestAccess& memory,
                VirtioInterrupt& interrupt, Logger log);
  MmioTransport(const MmioTransport&) = delete;
  MmioTransport& operator=(const MmioTransport&) = delete;

  void bus_read(uint64_t offset, std::span<uint8_t> data) override;
  void bus_write(uint64_t offset, std::span<const uint8_t> data) override;
  // The driver notified `queue` (QueueNotify by MMIO exit, or its ioeventfd fired).
  void notify(unsigned queue);

  const std::string& name() const { return name_; }
  uint32_t status() const;
  uint32_t interrupt_status() const;
  uint64_t negotiated_features() const;
  // Protocol violations seen since creation, and the last one's reason.
  uint64_t malformed_count() const { return malformed_.load(); }
  std::string last_malformed() const;

 private:
  // VirtioContext (all with lock_ held).
  std::mutex& lock() override { return lock_; }
  GuestAccess& memory() override { return memory_; }
  Virtqueue& queue(unsigned index) override { return queues_.at(index); }
  bool live() const override;
  void signal_used() override;
  void config_changed() override;
  void needs_reset(const std::string& reason) override;

  uint32_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint32_t value);
  void write_status(uint32_t value);
  bool features_acceptable() const;
  void notify_locked(unsigned queue);
  void write_queue_register(uint64_t offset, uint32_t value);
  void enable_queue();
  void reset_device();
  void raise(uint32_t bits);
  unsigned queue_count() const;
  Virtqueue* selected_queue();

  std::string name_;
  VirtioDevice& device_;
  GuestAccess& memory_;
  VirtioInterrupt& interrupt_;
  Logger log_;
  mutable std::mutex lock_;
  std::vector<Virtqueue> queues_;  // the most any feature set gives
  uint32_t status_ = 0;
  uint32_t interrupt_status_ = 0;
  uint32_t config_generation_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
  uint64_t episodes_ = 0;  // NEEDS_RESET episodes
  std::atomic<uint64_t> malformed_{0};
  std::string last_malformed_;
};

}  // namespace hvmm::vmm::virtio
