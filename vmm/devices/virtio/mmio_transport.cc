// The virtio-mmio v2 transport: registers, negotiation, status, queues, config, interrupts.
#include "hvmm/vmm/devices/virtio/mmio_transport.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace hvmm::vmm::virtio {
namespace {

// NEEDS_RESET episodes logged per transport; later ones are only counted.
constexpr uint64_t kMaxLoggedEpisodes = 8;

// Whether `bytes` is a width a config space access may have.
bool config_width(size_t bytes) {
  return bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8;
}

// Replace the low or high half of `value`.
uint64_t with_half(uint64_t value, bool high, uint32_t half) {
  return high ? (value & 0xffffffffu) | (uint64_t{half} << 32)
              : (value & ~uint64_t{0xffffffffu}) | half;
}

}  // namespace

// Attach the device and make room for the most queues any feature set gives it.
MmioTransport::MmioTransport(std::string name, VirtioDevice& device, GuestAccess& memory,
                             VirtioInterrupt& interrupt, Logger log)
    : name_(std::move(name)),
      device_(device),
      memory_(memory),
      interrupt_(interrupt),
      log_(std::move(log)) {
  const unsigned count = device_.queue_count(device_.offered_features());
  for (unsigned i = 0; i < count; ++i) {
    queues_.emplace_back(i, device_.queue_max_size(i));
  }
  device_.attach(*this);
}

// A register (32-bit, aligned) or the config space (1, 2, 4 or 8 bytes).
void MmioTransport::bus_read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard guard(lock_);
  if (offset >= kRegConfig && config_width(data.size())) {
    device_.read_config(offset - kRegConfig, data);
    return;
  }
  if (offset >= kRegConfig || data.size() != 4 || offset % 4 != 0) {
    std::memset(data.data(), 0xff, data.size());
    needs_reset(fmt::format("{}-byte read at offset {:#x}", data.size(), offset));
    return;
  }
  const uint32_t value = read_register(offset);
  std::memcpy(data.data(), &value, sizeof(value));
}

// A register write (32-bit, aligned) or a config space write.
void MmioTransport::bus_write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard guard(lock_);
  if (offset >= kRegConfig && config_width(data.size())) {
    auto written = device_.write_config(offset - kRegConfig, data);
    if (!written) {
      needs_reset(written.error().message);
    }
    return;
  }
  if (offset >= kRegConfig || data.size() != 4 || offset % 4 != 0) {
    needs_reset(fmt::format("{}-byte write at offset {:#x}", data.size(), offset));
    return;
  }
  uint32_t value = 0;
  std::memcpy(&value, data.data(), sizeof(value));
  write_register(offset, value);
}

// Serve a register read; write-only and unknown registers read as zero.
uint32_t MmioTransport::read_register(uint64_t offset) {
  const uint64_t offered = device_.offered_features() | kTransportFeatures;
  Virtqueue* queue = selected_queue();
  switch (offset) {
    case kRegMagic:
      return kMmioMagic;
    case kRegVersion:
      return kMmioVersion;
    case kRegDeviceId:
      return device_.device_id();
    case kRegVendorId:
      return kVendorId;
    case kRegDeviceFeatures:
      return device_features_sel_ > 1
                 ? 0
                 : static_cast<uint32_t>(offered >> (32 * device_features_sel_));
    case kRegQueueNumMax:
      return queue != nullptr ? queue->max_size() : 0;
    case kRegQueueNum:
      return queue != nullptr ? queue->size() : 0;
    case kRegQueueReady:
      return queue != nullptr && queue->ready() ? 1 : 0;
    case kRegInterruptStatus:
      return interrupt_status_;
    case kRegStatus:
      return status_;
    case kRegConfigGeneration:
      return config_generation_;
    default:
      return 0;
  }
}

// Dispatch a register write; read-only and unknown registers refuse writes.
void MmioTransport::write_register(uint64_t offset, uint32_t value) {
  switch (offset) {
    case kRegDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case kRegDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case kRegDriverFeatures:
      if ((status_ & kStatusFeaturesOk) != 0 || (driver_features_sel_ > 1 && value != 0)) {
        needs_reset(
            fmt::format("driver features {:#x} (word {}) written after FEATURES_OK or "
                        "beyond bit 63",
                        value, driver_features_sel_));
        return;
      }
      if (driver_features_sel_ <= 1) {
        driver_features_ = with_half(driver_features_, driver_features_sel_ == 1, value);
      }
      return;
    case kRegQueueSel:
      queue_sel_ = value;
      return;
    case kRegQueueNum:
    case kRegQueueReady:
    case kRegQueueDescLow:
    case kRegQueueDescHigh:
    case kRegQueueDriverLow:
    case kRegQueueDriverHigh:
    case kRegQueueDeviceLow:
    case kRegQueueDeviceHigh:
      write_queue_register(offset, value);
      return;
    case kRegQueueNotify:
      if (value >= queue_count()) {
        needs_reset(fmt::format("notify of absent queue {}", value));
        return;
      }
      notify_locked(value);
      return;
    case kRegInterruptAck:
      interrupt_status_ &= ~value;
      return;
    case kRegStatus:
      write_status(value);
      return;
    default:
      needs_reset(
          fmt::format("write of {:#x} to read-only or unknown register {:#x}", value, offset));
  }
}

// The status state machine: 0 resets; otherwise bits are only added, in order.
void MmioTransport::write_status(uint32_t value) {
  if (value == 0) {
    reset_device();
    return;
  }
  value &= ~kStatusNeedsReset;  // the device's bit, whatever the driver writes back
  const uint32_t old = status_ & ~kStatusNeedsReset;
  const uint32_t added = value & ~old;
  if ((old & ~value) != 0) {
    needs_reset(fmt::format("status {:#x} clears bits of {:#x} without a reset", value, old));
    return;
  }
  if ((added & kStatusFailed) != 0) {
    status_ |= kStatusFailed;
    log_(fmt::format("{}: the driver set FAILED (status {:#x})", name_, value));
    return;
  }
  const bool skipped = ((value & kStatusDriver) != 0 && (value & kStatusAcknowledge) == 0) ||
                       ((value & kStatusFeaturesOk) != 0 && (value & kStatusDriver) == 0) ||
                       ((value & kStatusDriverOk) != 0 && (value & kStatusFeaturesOk) == 0);
  if (skipped) {
    needs_reset(fmt::format("status {:#x} skips a step of the initialization", value));
    return;
  }
  if ((added & kStatusFeaturesOk) != 0 && !features_acceptable()) {
    value &= ~kStatusFeaturesOk;  // the driver reads it back and gives up
    log_(fmt::format("{}: features {:#x} refused (offered {:#x}; VERSION_1 is required)", name_,
                     driver_features_, device_.offered_features() | kTransportFeatures));
  }
  status_ = value | (status_ & kStatusNeedsReset);
  if ((added & kStatusDriverOk) != 0) {
    device_.activate(driver_features_);
  }
}

// Only offered features, and VERSION_1 among them.
bool MmioTransport::features_acceptable() const {
  const uint64_t offered = device_.offered_features() | kTransportFeatures;
  return (driver_features_ & ~offered) == 0 && (driver_features_ & feature(kFeatureVersion1)) != 0;
}

// Queue registers: only between FEATURES_OK and the queue's enabling, for a present queue.
void MmioTransport::write_queue_register(uint64_t offset, uint32_t value) {
  Virtqueue* queue = selected_queue();
  if (queue == nullptr || (status_ & kStatusFeaturesOk) == 0) {
    needs_reset(
        fmt::format("queue register {:#x} written for absent queue {} or before "
                    "FEATURES_OK",
                    offset, queue_sel_));
    return;
  }
  if (queue->ready() && offset != kRegQueueReady) {
    needs_reset(
        fmt::format("queue register {:#x} written while queue {} is enabled", offset, queue_sel_));
    return;
  }
  const bool high = (offset & 4) != 0;
  switch (offset) {
    case kRegQueueNum:
      if (value > 0xffff) {
        needs_reset(fmt::format("queue {} size {} does not fit 16 bits", queue_sel_, value));
        return;
      }
      queue->set_size(static_cast<uint16_t>(value));
      return;
    case kRegQueueDescLow:
    case kRegQueueDescHigh:
      queue->set_descriptor_table(Ipa(with_half(queue->descriptor_table().value(), high, value)));
      return;
    case kRegQueueDriverLow:
    case kRegQueueDriverHigh:
      queue->set_available_ring(Ipa(with_half(queue->available_ring().value(), high, value)));
      return;
    case kRegQueueDeviceLow:
    case kRegQueueDeviceHigh:
      queue->set_used_ring(Ipa(with_half(queue->used_ring().value(), high, value)));
      return;
    default:  // kRegQueueReady
      if (value > 1) {
        needs_reset(fmt::format("QueueReady {} for queue {}", value, queue_sel_));
      } else if (value == 0) {
        queue->disable();
      } else {
        auto enabled =
            queue->enable(memory_, (driver_features_ & feature(kFeatureIndirectDesc)) != 0);
        if (!enabled) {
          needs_reset(enabled.error().message);
        }
      }
  }
}

// A notification from the ioeventfd thread.
void MmioTransport::notify(unsigned queue) {
  std::lock_guard guard(lock_);
  if (queue < queue_count()) {
    notify_locked(queue);
  }
}

// Let the device process a queue of a live device; its Error is a malformed queue.
void MmioTransport::notify_locked(unsigned queue) {
  if (!live() || !queues_[queue].ready()) {
    return;
  }
  auto processed = device_.process_queue(queue);
  if (!processed) {
    needs_reset(processed.error().message);
  }
}

// Forget the driver's whole setup.
void MmioTransport::reset_device() {
  device_.reset();
  for (Virtqueue& queue : queues_) {
    queue.reset();
  }
  status_ = 0;
  interrupt_status_ = 0;
  driver_features_ = 0;
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
}

// DRIVER_OK, and neither NEEDS_RESET nor FAILED.
bool MmioTransport::live() const {
  return (status_ & kStatusDriverOk) != 0 && (status_ & (kStatusNeedsReset | kStatusFailed)) == 0;
}

// Used buffers: interrupt status bit 0.
void MmioTransport::signal_used() {
  raise(kInterruptUsedBuffer);
}

// A new config generation; the driver hears of it once it is running.
void MmioTransport::config_changed() {
  ++config_generation_;
  if ((status_ & kStatusDriverOk) != 0) {
    raise(kInterruptConfigChange);
  }
}

// Enter NEEDS_RESET (once per episode), log the first episodes, count every case.
void MmioTransport::needs_reset(const std::string& reason) {
  malformed_.fetch_add(1);
  last_malformed_ = reason;
  if ((status_ & kStatusNeedsReset) != 0) {
    return;
  }
  status_ |= kStatusNeedsReset;
  ++episodes_;
  if (episodes_ <= kMaxLoggedEpisodes) {
    log_(fmt::format("{}: needs reset: {}{}", name_, reason,
                     episodes_ == kMaxLoggedEpisodes ? " (later episodes only counted)" : ""));
  }
  raise(kInterruptConfigChange);
}

// Latch interrupt bits and pulse the line.
void MmioTransport::raise(uint32_t bits) {
  interrupt_status_ |= bits;
  interrupt_.raise();
}

// Queues with the features the driver has written so far.
unsigned MmioTransport::queue_count() const {
  return std::min<unsigned>(device_.queue_count(driver_features_),
                            static_cast<unsigned>(queues_.size()));
}

// The queue QueueSel names, or nullptr when it names none.
Virtqueue* MmioTransport::selected_queue() {
  return queue_sel_ < queue_count() ? &queues_[queue_sel_] : nullptr;
}

uint32_t MmioTransport::status() const {
  std::lock_guard guard(lock_);
  return status_;
}

uint32_t MmioTransport::interrupt_status() const {
  std::lock_guard guard(lock_);
  return interrupt_status_;
}

uint64_t MmioTransport::negotiated_features() const {
  std::lock_guard guard(lock_);
  return driver_features_;
}

std::string MmioTransport::last_malformed() const {
  std::lock_guard guard(lock_);
  return last_malformed_;
}

}  // namespace hvmm::vmm::virtio
