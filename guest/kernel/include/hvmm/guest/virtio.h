// The virtio-mmio transport (version 2) and the driver side of split virtqueues.
//
// Devices are announced on the command line in the Linux syntax,
// `virtio_mmio.device=<size>@<base>:<irq>[:<id>]` (repeatable). virtio_init() maps every
// window uncached, keeps the slots that answer with the magic, version 2 and a non-zero device
// id, and routes each IRQ through the IOAPIC to CPU 0. A driver then claims its device:
//
//   virtio::Device* dev = virtio::find_device(virtio::kDeviceIdBalloon);
//   uint64_t features;
//   if (dev == nullptr || !dev->negotiate(wanted, &features)) ...   // reset .. FEATURES_OK
//   virtio::Virtqueue* vq = dev->setup_queue(0);                    // each queue, in order
//   dev->set_handler(on_interrupt, ctx);
//   dev->driver_ok();
//   virtio::Buffer b{phys, len, /*device_writable=*/false};
//   vq->add(&b, 1, token); vq->kick(); vq->wait_used(timeout_us); vq->collect(&token, &len);
//
// Buffers are physical addresses (DMA address = guest physical address); the memory is the
// caller's. Nothing here allocates per request: the rings come from the buddy allocator once,
// at setup_queue(). A Virtqueue is not locked: one context (CPU, or the interrupt handler
// with the caller's interrupts off) uses it at a time.
#pragma once

#include <cstdint>

#include "hvmm/base/address.h"

namespace hvmm::guest::virtio {

using hvmm::PhysAddr;

// Device ids (virtio spec 5).
inline constexpr uint32_t kDeviceIdBalloon = 5;

// Transport feature bits (virtio spec 6).
inline constexpr uint64_t kFeatureVersion1 = uint64_t{1} << 32;

// InterruptStatus bits.
inline constexpr uint32_t kInterruptUsedBuffer = 1u << 0;
inline constexpr uint32_t kInterruptConfigChange = 1u << 1;

// Most devices and queues the kernel manages.
inline constexpr unsigned kMaxDevices = 8;
inline constexpr unsigned kMaxQueues = 8;
// Largest queue the driver sets up (a power of two).
inline constexpr unsigned kMaxQueueSize = 256;

// One element of a descriptor chain: `len` bytes at guest physical `addr`, read by the
// device, or written by it when `device_writable`.
struct Buffer {
  PhysAddr addr;
  uint32_t len = 0;
  bool device_writable = false;
};

// One `virtio_mmio.device=` value parsed: `<size>@<base>:<irq>[:<id>]`, size with K/M/G,
// base decimal or 0x hex. False (and `*out` unchanged) if malformed, size or base 0, or irq 0.
struct MmioSlot {
  uint64_t size = 0;
  PhysAddr base;
  uint32_t irq = 0;
  uint32_t platform_id = 0;  // the optional `:<id>`; 0 when absent
};
bool parse_mmio_slot(const char* text, MmioSlot* out);

// The driver side of one split virtqueue (descriptor table, available ring, used ring).
class Virtqueue {
 public:
  // Put a chain of `count` buffers on the available ring with `token` (returned by collect);
  // false, with nothing changed, when fewer than `count` descriptors are free. The device
  // sees it only after kick().
  bool add(const Buffer* buffers, unsigned count, void* token);
  // Notify the device of new available buffers (skipped while it asks for no notifications).
  void kick();
  // True if the device has returned a chain not collected yet.
  bool has_used() const;
  // Take the next returned chain: its token and the bytes the device wrote into it; false if
  // none. Its descriptors are free again.
  bool collect(void** token, uint32_t* written);
  // Wait until a returned chain is there, at most `timeout_us`; false on timeout or when the
  // device needs a reset. kHalt may open interrupts (sti; hlt; cli) on CPU 0 when the IRQ is
  // routed: only for callers holding no lock that an interrupt handler takes. kSpin never
  // enables interrupts and polls the device (any CPU, any context).
  enum class Wait { kHalt, kSpin };
  bool wait_used(uint64_t timeout_us, Wait how = Wait::kHalt);
  // True once the device returned a chain it was not given (an id outside the queue or not
  // in flight): nothing more is collected from this queue until it is set up again.
  bool broken() const { return broken_; }
  // Free descriptors, the queue's size, its index on the device.
  unsigned free_count() const { return free_count_; }
  unsigned size() const { return size_; }
  unsigned index() const { return index_; }

  // Counters: chains added, notifications written, chains collected.
  uint64_t added() const { return added_; }
  uint64_t kicks() const { return kicks_; }
  uint64_t collected() const { return collected_; }

 private:
  friend class Device;
  struct Desc;
  struct Avail;
  struct Used;

  // Bytes of ring memory for `size` entries and where the avail, used rings and the token
  // array start in it (descriptor table at 0).
  static uint64_t avail_offset(unsigned size);
  static uint64_t used_offset(unsigned size);
  static uint64_t tokens_offset(unsigned size);
  static uint64_t in_flight_offset(unsigned size);
  static uint64_t memory_bytes(unsigned size);
  // Point at zeroed ring memory `memory` (physical `phys`) and chain every descriptor free.
  void init(class Device* device, unsigned index, unsigned size, void* memory, PhysAddr phys);

  class Device* device_ = nullptr;
  PhysAddr phys_;
  Desc* desc_ = nullptr;
  Avail* avail_ = nullptr;
  Used* used_ = nullptr;
  void** tokens_ = nullptr;
  uint8_t* in_flight_ = nullptr;  // per head: 1 from add() until collect()
  bool broken_ = false;
  unsigned size_ = 0;
  unsigned index_ = 0;
  unsigned free_head_ = 0;
  unsigned free_count_ = 0;
  uint16_t avail_idx_ = 0;
  uint16_t last_used_ = 0;
  uint16_t pending_ = 0;  // chains added since the last kick
  uint64_t added_ = 0;
  uint64_t kicks_ = 0;
  uint64_t collected_ = 0;
};

class Device;

// Called from the device's interrupt (interrupts off, on CPU 0) or from poll(), with the
// InterruptStatus bits just acknowledged. Keep it short: set flags, let process context work.
using InterruptHandler = void (*)(Device& device, uint32_t status, void* context);

// One virtio-mmio v2 device slot.
class Device {
 public:
  // What the command line said and the device answered.
  uint32_t device_id() const { return device_id_; }
  uint32_t vendor_id() const { return vendor_id_; }
  PhysAddr base() const { return base_; }
  uint32_t irq() const { return irq_; }
  // True if the IRQ is routed through the IOAPIC; false means callers must poll().
  bool irq_routed() const { return irq_routed_; }
  // True once a driver called negotiate() on this device.
  bool claimed() const { return claimed_; }

  // Reset, ACKNOWLEDGE, DRIVER; accept `wanted` & offered (VERSION_1 always, and it must be
  // offered), FEATURES_OK and re-read it. On failure the device is marked FAILED, the reason
  // is printed and false returned. `*accepted` receives the negotiated set.
  bool negotiate(uint64_t wanted, uint64_t* accepted);
  // True if `bit` (a mask) was negotiated.
  bool has_feature(uint64_t bit) const { return (features_ & bit) == bit; }
  // Set up queue `index` with at most `max_size` entries (rounded down to a power of two and
  // to the device's maximum): rings from the buddy allocator, addresses written, ready.
  // nullptr (reason printed) if the queue is absent or memory is short. Between negotiate()
  // and driver_ok(); a queue index may be set up once.
  Virtqueue* setup_queue(unsigned index, unsigned max_size = kMaxQueueSize);
  // Register the interrupt handler (before driver_ok(), so no event is missed).
  void set_handler(InterruptHandler handler, void* context);
  // Set DRIVER_OK: the device is live.
  void driver_ok();
  // Write 0 to Status and wait for it to read back 0: the device forgets queues and features.
  void reset();

  // Device configuration space (little-endian fields at 0x100 + offset). Multi-word reads of
  // a field that can change use config_generation() to get a consistent value.
  uint8_t config_read8(uint32_t offset) const;
  uint32_t config_read32(uint32_t offset) const;
  void config_write32(uint32_t offset, uint32_t value);
  uint64_t config_read64(uint32_t offset) const;
  uint32_t config_generation() const;

  // Read and acknowledge InterruptStatus and run the handler with the bits seen, until the
  // status reads zero (level-triggered sources cannot lose an edge). The IRQ path and the
  // polling fallback both come here. Returns the bits handled.
  uint32_t poll();
  // True if the device set NEEDS_RESET (printed once per device when first seen).
  bool needs_reset();

  // Counters: interrupts taken through the IOAPIC, status bits handled (either path).
  uint64_t interrupts() const { return interrupts_; }
  uint64_t events() const { return events_; }

  // Transport register access (offsets of virtio spec 4.2.2).
  uint32_t read_reg(uint32_t offset) const;
  void write_reg(uint32_t offset, uint32_t value);

  // Bind this slot to the registers mapped at `regs`; false if no v2 device answers there
  // (bad magic, version other than 2, or device id 0: an empty slot). Used by virtio_init().
  bool probe(const MmioSlot& slot, volatile uint32_t* regs);
  // The IOAPIC interrupt of this device: count it and poll() (interrupts off, CPU 0).
  void handle_irq();
  // Record that the IRQ is routed (virtio_init()).
  void set_irq_routed(bool routed) { irq_routed_ = routed; }

 private:
  volatile uint32_t* regs_ = nullptr;
  PhysAddr base_;
  uint64_t size_ = 0;
  uint32_t irq_ = 0;
  uint32_t device_id_ = 0;
  uint32_t vendor_id_ = 0;
  uint64_t features_ = 0;
  bool irq_routed_ = false;
  bool claimed_ = false;
  bool reset_reported_ = false;
  InterruptHandler handler_ = nullptr;
  void* handler_context_ = nullptr;
  uint64_t interrupts_ = 0;
  uint64_t events_ = 0;
  Virtqueue queues_[kMaxQueues];
};

// Parse every `virtio_mmio.device=` of the command line, map and probe the slots, and route
// their IRQs (prints one line per device found, and says so when an IRQ falls back to
// polling). Call once, on CPU 0, after memory_init() and the local APIC.
void virtio_init();

// Devices found by virtio_init(), in command-line order.
unsigned device_count();
Device* device(unsigned index);

// The `nth` device (0-based) with `device_id` that no driver claimed yet, or nullptr.
Device* find_device(uint32_t device_id, unsigned nth = 0);

// Poll every device whose IRQ is not routed (cheap when all are routed); for wait loops.
void poll_unrouted();

}  // namespace hvmm::guest::virtio
