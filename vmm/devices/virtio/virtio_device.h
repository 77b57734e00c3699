// VirtioDevice: what a virtio device (balloon, control channel) implements, and
// VirtioContext: what its transport lends it.
//
// The transport (mmio_transport.h) owns the registers, the feature negotiation, the status
// state machine and the queues; the device owns its config space and what its queues carry.
// Locking: the transport has one lock per device. It calls every VirtioDevice method with
// that lock held, and the device takes the same lock (VirtioContext::lock()) in the methods
// the host calls on other threads (set a balloon target, send a control request), so queue
// and device state are never touched by two threads at once.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <string>

#include "hvmm/base/result.h"
#include "hvmm/vmm/devices/virtio/queue.h"
#include "hvmm/vmm/memory/guest_access.h"

namespace hvmm::vmm::virtio {

// Feature bits of the transport (OASIS virtio 1.2, section 6).
inline constexpr unsigned kFeatureIndirectDesc = 28;
inline constexpr unsigned kFeatureEventIdx = 29;
inline constexpr unsigned kFeatureVersion1 = 32;

// Return the mask of feature bit `bit`.
constexpr uint64_t feature(unsigned bit) {
  return uint64_t{1} << bit;
}

// VirtioContext is the transport as its device sees it; every method needs lock() held.
class VirtioContext {
 public:
  virtual ~VirtioContext() = default;
  // The transport's lock (held already when the transport calls the device).
  virtual std::mutex& lock() = 0;
  // Guest memory, through the Translator: the only way a device reaches the guest.
  virtual GuestAccess& memory() = 0;
  // Queue `index` (< the device's queue_count of the negotiated features).
  virtual Virtqueue& queue(unsigned index) = 0;
  // True once the driver set DRIVER_OK and while the device is not in NEEDS_RESET/FAILED.
  virtual bool live() const = 0;
  // Tell the driver that used buffers are ready (interrupt status bit 0).
  virtual void signal_used() = 0;
  // The device changed its config space: new generation, interrupt status bit 1.
  virtual void config_changed() = 0;
  // The guest broke the protocol: NEEDS_RESET, log `reason` once, count it.
  virtual void needs_reset(const std::string& reason) = 0;
};

// Take every available chain of queue `index`, hand it to `take` (a Result<void> of the
// chain), return it with no bytes written, then interrupt once if any was returned. The first
// error from the queue or from `take` stops the loop and is returned (the caller's device
// then goes to NEEDS_RESET).
template <typename Take>
Result<void> return_each_chain(VirtioContext& context, unsigned index, Take&& take) {
  Virtqueue& queue = context.queue(index);
  bool returned = false;
  while (true) {
    auto chain = queue.pop(context.memory());
    HVMM_TRY(chain);
    if (!*chain) {
      break;
    }
    HVMM_TRY(take(**chain));
    HVMM_TRY(queue.push_used(context.memory(), (*chain)->head, 0));
    returned = true;
  }
  if (returned) {
    context.signal_used();
  }
  return Ok();
}

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  // A short name for logs ("virtio-balloon").
  virtual const char* name() const = 0;
  // The virtio device id (5: balloon).
  virtual uint32_t device_id() const = 0;
  // The features the device offers (VERSION_1 included).
  virtual uint64_t offered_features() const = 0;
  // How many queues exist with `features` negotiated (numbering may depend on them).
  virtual unsigned queue_count(uint64_t features) const = 0;
  // The largest size queue `index` accepts.
  virtual uint16_t queue_max_size(unsigned /*index*/) const { return 256; }
  // Called once by the transport that carries the device.
  virtual void attach(VirtioContext& context) = 0;
  // Fill `data` from the config space at `offset` (out of range reads as zero).
  virtual void read_config(uint64_t offset, std::span<uint8_t> data) = 0;
  // The driver writes the config space; an Error makes the device NEEDS_RESET.
  virtual Result<void> write_config(uint64_t offset, std::span<const uint8_t> data) = 0;
  // The driver set DRIVER_OK with `features` negotiated.
  virtual void activate(uint64_t features) = 0;
  // The driver notified queue `index`; an Error (malformed guest data) makes it NEEDS_RESET.
  virtual Result<void> process_queue(unsigned index) = 0;
  // The driver reset the device (status 0): forget everything the driver set up.
  virtual void reset() = 0;
};

// VirtioInterrupt raises the device's interrupt line once (an irqfd edge, or an irq pulse).
class VirtioInterrupt {
 public:
  virtual ~VirtioInterrupt() = default;
  virtual void raise() = 0;
};

}  // namespace hvmm::vmm::virtio
