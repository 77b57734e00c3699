// virtio-mmio version 2 (virtio spec 4.2): discovery from `virtio_mmio.device=` options,
// the device initialisation sequence (spec 3.1.1), queue setup, configuration space and the
// interrupt path (IOAPIC pin → kVectorDeviceBase + slot → Device::handle_irq()).
#include "hvmm/guest/arch/apic.h"
#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/arch/trap.h"
#include "hvmm/guest/cmdline.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/ioapic.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/virtio.h"

namespace hvmm::guest::virtio {
namespace {

// Transport registers (spec 4.2.2).
constexpr uint32_t kRegMagic = 0x000;
constexpr uint32_t kRegVersion = 0x004;
constexpr uint32_t kRegDeviceId = 0x008;
constexpr uint32_t kRegVendorId = 0x00c;
constexpr uint32_t kRegDeviceFeatures = 0x010;
constexpr uint32_t kRegDeviceFeaturesSel = 0x014;
constexpr uint32_t kRegDriverFeatures = 0x020;
constexpr uint32_t kRegDriverFeaturesSel = 0x024;
constexpr uint32_t kRegQueueSel = 0x030;
constexpr uint32_t kRegQueueNumMax = 0x034;
constexpr uint32_t kRegQueueNum = 0x038;
constexpr uint32_t kRegQueueReady = 0x044;
constexpr uint32_t kRegInterruptStatus = 0x060;
constexpr uint32_t kRegInterruptAck = 0x064;
constexpr uint32_t kRegStatus = 0x070;
constexpr uint32_t kRegQueueDescLow = 0x080;
constexpr uint32_t kRegQueueDescHigh = 0x084;
constexpr uint32_t kRegQueueDriverLow = 0x090;
constexpr uint32_t kRegQueueDriverHigh = 0x094;
constexpr uint32_t kRegQueueDeviceLow = 0x0a0;
constexpr uint32_t kRegQueueDeviceHigh = 0x0a4;
constexpr uint32_t kRegConfigGeneration = 0x0fc;
constexpr uint32_t kRegConfig = 0x100;

constexpr uint32_t kMagic = 0x74726976;  // "virt"
constexpr uint32_t kStatusAcknowledge = 1;
constexpr uint32_t kStatusDriver = 2;
constexpr uint32_t kStatusDriverOk = 4;
constexpr uint32_t kStatusFeaturesOk = 8;
constexpr uint32_t kStatusNeedsReset = 0x40;
constexpr uint32_t kStatusFailed = 0x80;

constexpr const char* kOption = "virtio_mmio.device";

Device g_devices[kMaxDevices];
unsigned g_count = 0;
bool g_any_unrouted = false;

// Parse an unsigned number at `*p` (decimal or 0x hex) up to a character of `stops`, with an
// optional K/M/G suffix when `suffix`; advance `*p` past it.
bool parse_field(const char** p, const char* stops, bool suffix, uint64_t* value) {
  char text[24];
  size_t n = 0;
  for (const char* q = *p; *q != '\0'; ++q) {
    bool stop = false;
    for (const char* s = stops; *s != '\0'; ++s)
      stop = stop || *q == *s;
    if (stop)
      break;
    if (n + 1 >= sizeof(text))
      return false;
    text[n++] = *q;
  }
  text[n] = '\0';
  if (n == 0)
    return false;
  char last = text[n - 1];
  bool has_suffix =
      last == 'K' || last == 'k' || last == 'M' || last == 'm' || last == 'G' || last == 'g';
  bool is_hex = n > 1 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
  if (has_suffix && (!suffix || is_hex))
    return false;
  if (!parse_number(text, value))
    return false;
  *p += n;
  return true;
}

// Round down to a power of two (0 stays 0).
unsigned floor_pow2(unsigned v) {
  unsigned p = 1;
  while (p * 2 != 0 && p * 2 <= v)
    p *= 2;
  return v == 0 ? 0 : p;
}

// The buddy order whose block holds `bytes`.
unsigned order_for(uint64_t bytes) {
  unsigned order = 0;
  while ((kPageSize << order) < bytes)
    ++order;
  return order;
}

// The device vector handler: slot n owns vector kVectorDeviceBase + n.
void device_vector(TrapFrame& frame) {
  unsigned slot = static_cast<unsigned>(frame.vector) - arch::kVectorDeviceBase;
  if (slot < g_count)
    g_devices[slot].handle_irq();
  arch::apic_eoi();
}

// Route slot `n`'s IRQ to CPU 0; say so when it must be polled instead.
void route_irq(unsigned n) {
  Device& dev = g_devices[n];
  bool ok =
      n < arch::kDeviceVectors && arch::apic_available() && ioapic_init() &&
      ioapic_route(dev.irq(), static_cast<uint8_t>(arch::kVectorDeviceBase + n), arch::apic_id());
  if (ok)
    arch::set_interrupt_handler(static_cast<uint8_t>(arch::kVectorDeviceBase + n), device_vector);
  else
    printk("virtio-mmio: IRQ %u of the device at %lx cannot be routed (%u IOAPIC pins): polling\n",
           dev.irq(), dev.base().value(), ioapic_pins());
  dev.set_irq_routed(ok);
  g_any_unrouted = g_any_unrouted || !ok;
}

}  // namespace

// See virtio.h.
bool parse_mmio_slot(const char* text, MmioSlot* out) {
  MmioSlot slot;
  uint64_t irq = 0;
  uint64_t id = 0;
  uint64_t base = 0;
  const char* p = text;
  if (!parse_field(&p, "@", true, &slot.size) || *p++ != '@')
    return false;
  if (!parse_field(&p, ":", false, &base) || *p++ != ':')
    return false;
  if (!parse_field(&p, ":", false, &irq))
    return false;
  if (*p == ':' && (++p, !parse_field(&p, "", false, &id)))
    return false;
  if (*p != '\0' || slot.size == 0 || base == 0 || irq == 0 || irq > 0xffffffffu ||
      id > 0xffffffffu)
    return false;
  slot.base = PhysAddr(base);
  slot.irq = static_cast<uint32_t>(irq);
  slot.platform_id = static_cast<uint32_t>(id);
  *out = slot;
  return true;
}

// Read a 32-bit transport register.
uint32_t Device::read_reg(uint32_t offset) const {
  return regs_[offset / 4];
}

// Write a 32-bit transport register.
void Device::write_reg(uint32_t offset, uint32_t value) {
  regs_[offset / 4] = value;
}

// Check magic, version 2 and a non-zero device id.
bool Device::probe(const MmioSlot& slot, volatile uint32_t* regs) {
  regs_ = regs;
  base_ = slot.base;
  size_ = slot.size;
  irq_ = slot.irq;
  uint32_t magic = read_reg(kRegMagic);
  uint32_t version = read_reg(kRegVersion);
  device_id_ = read_reg(kRegDeviceId);
  vendor_id_ = read_reg(kRegVendorId);
  if (magic != kMagic || version != 2) {
    // Version 1 is the legacy transport (QEMU's default unless virtio-mmio.force-legacy=false).
    printk("virtio-mmio: no version-2 device at %lx (magic %x, version %u): skipped\n",
           base_.value(), magic, version);
    return false;
  }
  return device_id_ != 0;
}

// Status 0, then wait until the device reads back 0 (spec 4.2.3.1).
void Device::reset() {
  write_reg(kRegStatus, 0);
  while (read_reg(kRegStatus) != 0)
    arch::pause();
  features_ = 0;
}

// The initialisation sequence up to FEATURES_OK (spec 3.1.1 steps 1-6).
bool Device::negotiate(uint64_t wanted, uint64_t* accepted) {
  reset();
  claimed_ = true;
  write_reg(kRegStatus, kStatusAcknowledge);
  write_reg(kRegStatus, kStatusAcknowledge | kStatusDriver);
  write_reg(kRegDeviceFeaturesSel, 0);
  uint64_t offered = read_reg(kRegDeviceFeatures);
  write_reg(kRegDeviceFeaturesSel, 1);
  offered |= uint64_t{read_reg(kRegDeviceFeatures)} << 32;
  const char* why = nullptr;
  uint64_t take = (wanted & offered) | kFeatureVersion1;
  if ((offered & kFeatureVersion1) == 0) {
    why = "VERSION_1 not offered";
  } else {
    write_reg(kRegDriverFeaturesSel, 0);
    write_reg(kRegDriverFeatures, static_cast<uint32_t>(take));
    write_reg(kRegDriverFeaturesSel, 1);
    write_reg(kRegDriverFeatures, static_cast<uint32_t>(take >> 32));
    write_reg(kRegStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    if ((read_reg(kRegStatus) & kStatusFeaturesOk) == 0)
      why = "FEATURES_OK not accepted";
  }
  if (why != nullptr) {
    write_reg(kRegStatus, read_reg(kRegStatus) | kStatusFailed);
    printk("virtio-mmio: device %u at %lx: %s (offered %lx)\n", device_id_, base_.value(), why,
           offered);
    return false;
  }
  features_ = take;
  if (accepted != nullptr)
    *accepted = take;
  printk_level(kLogDebug, "virtio-mmio: device %u at %lx: features offered %lx, accepted %lx\n",
               device_id_, base_.value(), offered, take);
  return true;
}

// Allocate zeroed rings, program the queue, mark it ready (spec 4.2.3.2).
Virtqueue* Device::setup_queue(unsigned index, unsigned max_size) {
  if (index >= kMaxQueues || queues_[index].size() != 0)
    return nullptr;
  write_reg(kRegQueueSel, index);
  unsigned num_max = read_reg(kRegQueueNumMax);
  if (read_reg(kRegQueueReady) != 0 || num_max == 0) {
    printk("virtio-mmio: device %u at %lx: queue %u absent or busy\n", device_id_, base_.value(),
           index);
    return nullptr;
  }
  unsigned limit = max_size < kMaxQueueSize ? max_size : kMaxQueueSize;
  unsigned size = floor_pow2(num_max < limit ? num_max : limit);
  unsigned order = order_for(Virtqueue::memory_bytes(size));
  PhysAddr pa = kmem().buddy.alloc_phys(mm::kGfpKernel | mm::kGfpZero, order);
  if (size == 0 || pa == mm::kNoPhys) {
    printk("virtio-mmio: device %u: no memory for queue %u (%u entries)\n", device_id_, index,
           size);
    return nullptr;
  }
  Virtqueue& vq = queues_[index];
  vq.init(this, index, size, mm::arch::phys_to_virt(pa), pa);
  uint64_t desc = pa.value();
  uint64_t avail = desc + Virtqueue::avail_offset(size);
  uint64_t used = desc + Virtqueue::used_offset(size);
  write_reg(kRegQueueNum, size);
  write_reg(kRegQueueDescLow, static_cast<uint32_t>(desc));
  write_reg(kRegQueueDescHigh, static_cast<uint32_t>(desc >> 32));
  write_reg(kRegQueueDriverLow, static_cast<uint32_t>(avail));
  write_reg(kRegQueueDriverHigh, static_cast<uint32_t>(avail >> 32));
  write_reg(kRegQueueDeviceLow, static_cast<uint32_t>(used));
  write_reg(kRegQueueDeviceHigh, static_cast<uint32_t>(used >> 32));
  write_reg(kRegQueueReady, 1);
  return &vq;
}

// Remember the handler; interrupts are delivered to it from now on.
void Device::set_handler(InterruptHandler handler, void* context) {
  handler_context_ = context;
  __atomic_store_n(&handler_, handler, __ATOMIC_RELEASE);
}

// Spec 3.1.1 step 8.
void Device::driver_ok() {
  write_reg(kRegStatus, read_reg(kRegStatus) | kStatusDriverOk);
}

// One configuration byte.
uint8_t Device::config_read8(uint32_t offset) const {
  return reinterpret_cast<volatile const uint8_t*>(regs_)[kRegConfig + offset];
}

// One configuration word (offset 4-aligned).
uint32_t Device::config_read32(uint32_t offset) const {
  return read_reg(kRegConfig + offset);
}

// Write one configuration word.
void Device::config_write32(uint32_t offset, uint32_t value) {
  write_reg(kRegConfig + offset, value);
}

// Two words, re-read until the generation is stable across them.
uint64_t Device::config_read64(uint32_t offset) const {
  uint32_t gen;
  uint64_t value;
  do {
    gen = config_generation();
    value = config_read32(offset) | (uint64_t{config_read32(offset + 4)} << 32);
  } while (gen != config_generation());
  return value;
}

// ConfigGeneration register.
uint32_t Device::config_generation() const {
  return read_reg(kRegConfigGeneration);
}

// Ack what is pending and hand it to the handler, until nothing is pending.
uint32_t Device::poll() {
  uint32_t handled = 0;
  for (;;) {
    uint32_t status = read_reg(kRegInterruptStatus);
    if (status == 0)
      return handled;
    write_reg(kRegInterruptAck, status);
    handled |= status;
    ++events_;
    InterruptHandler handler = __atomic_load_n(&handler_, __ATOMIC_ACQUIRE);
    if (handler != nullptr)
      handler(*this, status, handler_context_);
  }
}

// Count the interrupt and poll the status.
void Device::handle_irq() {
  ++interrupts_;
  poll();
}

// Read Status; report NEEDS_RESET once.
bool Device::needs_reset() {
  if ((read_reg(kRegStatus) & kStatusNeedsReset) == 0)
    return false;
  if (!reset_reported_) {
    reset_reported_ = true;
    printk("virtio-mmio: device %u at %lx needs a reset (NEEDS_RESET set)\n", device_id_,
           base_.value());
  }
  return true;
}

// See virtio.h.
void virtio_init() {
  char text[64];
  for (unsigned i = 0; cmdline_get_nth(kOption, i, text, sizeof(text)); ++i) {
    MmioSlot slot;
    if (!parse_mmio_slot(text, &slot)) {
      printk("virtio-mmio: ignoring malformed %s=%s\n", kOption, text);
      continue;
    }
    if (g_count == kMaxDevices) {
      printk("virtio-mmio: more than %u devices, ignoring %s\n", kMaxDevices, text);
      continue;
    }
    auto* regs = static_cast<volatile uint32_t*>(ioremap(slot.base, slot.size));
    if (regs == nullptr) {
      printk("virtio-mmio: cannot map %s\n", text);
      continue;
    }
    Device& dev = g_devices[g_count];
    if (!dev.probe(slot, regs))
      continue;  // an empty slot (device id 0) or no device: the window stays mapped, unused
    printk("virtio-mmio: device %u (vendor %x) at %lx irq %u\n", dev.device_id(), dev.vendor_id(),
           slot.base.value(), slot.irq);
    route_irq(g_count++);
  }
}

// Devices found.
unsigned device_count() {
  return g_count;
}

// The device at `index`, or nullptr.
Device* device(unsigned index) {
  return index < g_count ? &g_devices[index] : nullptr;
}

// The nth unclaimed device of a type.
Device* find_device(uint32_t device_id, unsigned nth) {
  for (unsigned i = 0; i < g_count; ++i) {
    Device& dev = g_devices[i];
    if (dev.device_id() != device_id || dev.claimed())
      continue;
    if (nth-- == 0)
      return &dev;
  }
  return nullptr;
}

// Poll the devices that have no routed IRQ.
void poll_unrouted() {
  if (!g_any_unrouted)
    return;
  for (unsigned i = 0; i < g_count; ++i)
    if (!g_devices[i].irq_routed())
      g_devices[i].poll();
}

}  // namespace hvmm::guest::virtio
