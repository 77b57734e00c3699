// Test harness of the virtio devices (unit tests, replay tests and fuzz targets): guest RAM
// with guard bytes around it, a fake balloon backend, a counting interrupt, and a small
// well-behaved virtio-mmio driver that lays out split queues in that RAM.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "hvmm/vmm/devices/balloon/balloon_backend.h"
#include "hvmm/vmm/devices/virtio/mmio_transport.h"
#include "hvmm/vmm/memory/guest_access.h"

namespace hvmm::vmm::testing {

// GuardedGuestMemory is guest RAM [0, size) between two guard areas of a known pattern. An
// access outside RAM fails (as the Translator's would) and is counted; guards_intact() says
// whether anything wrote outside RAM anyway.
class GuardedGuestMemory final : public GuestAccess {
 public:
  static constexpr size_t kGuard = 4096;
  static constexpr uint8_t kGuardByte = 0xa5;

  explicit GuardedGuestMemory(uint64_t size) : size_(size), bytes_(size + 2 * kGuard, 0) {
    std::fill(bytes_.begin(), bytes_.begin() + kGuard, kGuardByte);
    std::fill(bytes_.end() - kGuard, bytes_.end(), kGuardByte);
  }
  Result<void> read(Ipa ipa, std::span<uint8_t> out) override {
    if (!fits(ipa, out.size())) {
      ++refused_;
      return make_error(ErrorCode::kNotFound, "read of {} bytes at {} outside RAM", out.size(),
                        ipa);
    }
    if (!out.empty()) {
      std::memcpy(out.data(), ram() + ipa.value(), out.size());
    }
    return Ok();
  }
  Result<void> write(Ipa ipa, std::span<const uint8_t> data) override {
    if (!fits(ipa, data.size())) {
      ++refused_;
      return make_error(ErrorCode::kNotFound, "write of {} bytes at {} outside RAM", data.size(),
                        ipa);
    }
    if (!data.empty()) {
      std::memcpy(ram() + ipa.value(), data.data(), data.size());
    }
    return Ok();
  }
  // Whether both guard areas still hold their pattern.
  bool guards_intact() const {
    auto guard = [](uint8_t b) { return b == kGuardByte; };
    return std::all_of(bytes_.begin(), bytes_.begin() + kGuard, guard) &&
           std::all_of(bytes_.end() - kGuard, bytes_.end(), guard);
  }
  uint64_t refused() const { return refused_; }
  uint64_t size() const { return size_; }
  uint8_t* ram() { return bytes_.data() + kGuard; }
  template <typename T>
  T load(uint64_t address) {
    T value{};
    std::memcpy(&value, ram() + address, sizeof(T));
    return value;
  }
  template <typename T>
  void store(uint64_t address, T value) {
    std::memcpy(ram() + address, &value, sizeof(T));
  }

 private:
  bool fits(Ipa ipa, uint64_t n) const { return ipa.value() <= size_ && n <= size_ - ipa.value(); }
  uint64_t size_;
  std::vector<uint8_t> bytes_;
  uint64_t refused_ = 0;
};

// FakeBalloonBackend records every run it is given.
class FakeBalloonBackend final : public BalloonBackend {
 public:
  Result<void> inflate(std::span<const IpaRange> runs) override {
    inflated.insert(inflated.end(), runs.begin(), runs.end());
    return Ok();
  }
  Result<void> deflate(std::span<const IpaRange> runs) override {
    deflated.insert(deflated.end(), runs.begin(), runs.end());
    return Ok();
  }
  Result<void> report(std::span<const IpaRange> runs) override {
    reported.insert(reported.end(), runs.begin(), runs.end());
    return Ok();
  }
  std::vector<IpaRange> inflated, deflated, reported;
};

// CountingInterrupt counts raises.
class CountingInterrupt final : public virtio::VirtioInterrupt {
 public:
  void raise() override { ++raised; }
  unsigned raised = 0;
};

// Where a test driver puts one queue: the three rings, `size` entries each.
struct QueueLayout {
  uint64_t desc;
  uint64_t avail;
  uint64_t used;
  uint16_t size;
};

// A well-behaved queue layout for queue `index` in the harness's RAM: 16 KiB per queue
// from 64 KiB up.
inline QueueLayout default_layout(unsigned index, uint16_t size = 256) {
  const uint64_t base = 0x10000 + uint64_t{index} * 0x4000;
  return {base, base + 0x1000, base + 0x2000, size};
}

// TestDriver drives a transport through its registers like a virtio-mmio v2 driver.
class TestDriver {
 public:
  TestDriver(virtio::MmioTransport& transport, GuardedGuestMemory& memory)
      : transport_(transport), memory_(memory) {}

  uint32_t read32(uint64_t offset) {
    uint32_t value = 0;
    transport_.bus_read(offset, {reinterpret_cast<uint8_t*>(&value), 4});
    return value;
  }
  void write32(uint64_t offset, uint32_t value) {
    transport_.bus_write(offset, {reinterpret_cast<const uint8_t*>(&value), 4});
  }
  // The 64 offered feature bits.
  uint64_t device_features() {
    write32(virtio::kRegDeviceFeaturesSel, 0);
    uint64_t low = read32(virtio::kRegDeviceFeatures);
    write32(virtio::kRegDeviceFeaturesSel, 1);
    return low | uint64_t{read32(virtio::kRegDeviceFeatures)} << 32;
  }
  // ACKNOWLEDGE, DRIVER, `features`, FEATURES_OK; true when the device kept FEATURES_OK.
  bool negotiate(uint64_t features) {
    write32(virtio::kRegStatus, 0);
    write32(virtio::kRegStatus, virtio::kStatusAcknowledge);
    write32(virtio::kRegStatus, virtio::kStatusAcknowledge | virtio::kStatusDriver);
    write32(virtio::kRegDriverFeaturesSel, 0);
    write32(virtio::kRegDriverFeatures, static_cast<uint32_t>(features));
    write32(virtio::kRegDriverFeaturesSel, 1);
    write32(virtio::kRegDriverFeatures, static_cast<uint32_t>(features >> 32));
    write32(virtio::kRegStatus,
            virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk);
    return (read32(virtio::kRegStatus) & virtio::kStatusFeaturesOk) != 0;
  }
  // Program queue `index` with `layout` and enable it.
  void setup_queue(unsigned index, QueueLayout layout) {
    layouts_.resize(std::max<size_t>(layouts_.size(), index + 1));
    avail_idx_.resize(layouts_.size());
    next_desc_.resize(layouts_.size());
    layouts_[index] = layout;
    avail_idx_[index] = 0;
    next_desc_[index] = 0;
    memory_.store<uint16_t>(layout.avail + 2, 0);
    write32(virtio::kRegQueueSel, index);
    write32(virtio::kRegQueueNum, layout.size);
    write32(virtio::kRegQueueDescLow, static_cast<uint32_t>(layout.desc));
    write32(virtio::kRegQueueDescHigh, static_cast<uint32_t>(layout.desc >> 32));
    write32(virtio::kRegQueueDriverLow, static_cast<uint32_t>(layout.avail));
    write32(virtio::kRegQueueDriverHigh, static_cast<uint32_t>(layout.avail >> 32));
    write32(virtio::kRegQueueDeviceLow, static_cast<uint32_t>(layout.used));
    write32(virtio::kRegQueueDeviceHigh, static_cast<uint32_t>(layout.used >> 32));
    write32(virtio::kRegQueueReady, 1);
  }
  void driver_ok() {
    write32(virtio::kRegStatus, virtio::kStatusAcknowledge | virtio::kStatusDriver |
                                    virtio::kStatusFeaturesOk | virtio::kStatusDriverOk);
  }
  // Write descriptor `index` of queue `queue` raw.
  void put_descriptor(unsigned queue, uint16_t index, uint64_t address, uint32_t length,
                      uint16_t flags, uint16_t next) {
    const uint64_t at = layouts_[queue].desc + 16 * uint64_t{index};
    memory_.store<uint64_t>(at, address);
    memory_.store<uint32_t>(at + 8, length);
    memory_.store<uint16_t>(at + 12, flags);
    memory_.store<uint16_t>(at + 14, next);
  }
  // Chain `buffers` from fresh descriptors, make the chain available, return its head.
  uint16_t add_chain(unsigned queue, const std::vector<virtio::Buffer>& buffers) {
    const uint16_t size = layouts_[queue].size;
    const uint16_t head = static_cast<uint16_t>(next_desc_[queue] % size);
    for (size_t i = 0; i < buffers.size(); ++i) {
      const uint16_t at = static_cast<uint16_t>((head + i) % size);
      const bool last = i + 1 == buffers.size();
      put_descriptor(queue, at, buffers[i].address.value(), buffers[i].length,
                     static_cast<uint16_t>((last ? 0 : virtio::kDescNext) |
                                           (buffers[i].writable ? virtio::kDescWrite : 0)),
                     static_cast<uint16_t>((at + 1) % size));
    }
    next_desc_[queue] += static_cast<uint32_t>(buffers.size());
    publish(queue, head);
    return head;
  }
  // Make descriptor `head` available (the ring entry, then the index).
  void publish(unsigned queue, uint16_t head) {
    const QueueLayout& layout = layouts_[queue];
    memory_.store<uint16_t>(
        layout.avail + 4 + 2 * static_cast<uint64_t>(avail_idx_[queue] % layout.size), head);
    ++avail_idx_[queue];
    memory_.store<uint16_t>(layout.avail + 2, avail_idx_[queue]);
  }
  // Overwrite the available index (for malformed cases).
  void set_avail_index(unsigned queue, uint16_t value) {
    avail_idx_[queue] = value;
    memory_.store<uint16_t>(layouts_[queue].avail + 2, value);
  }
  void notify(unsigned queue) { write32(virtio::kRegQueueNotify, queue); }
  uint16_t used_index(unsigned queue) { return memory_.load<uint16_t>(layouts_[queue].used + 2); }
  // Used element `i`: {id, len}.
  std::pair<uint32_t, uint32_t> used(unsigned queue, uint16_t i) {
    const QueueLayout& layout = layouts_[queue];
    const uint64_t at = layout.used + 4 + 8 * uint64_t{static_cast<uint16_t>(i % layout.size)};
    return {memory_.load<uint32_t>(at), memory_.load<uint32_t>(at + 4)};
  }
  uint32_t status() { return read32(virtio::kRegStatus); }
  bool needs_reset() { return (status() & virtio::kStatusNeedsReset) != 0; }

 private:
  virtio::MmioTransport& transport_;
  GuardedGuestMemory& memory_;
  std::vector<QueueLayout> layouts_;
  std::vector<uint16_t> avail_idx_;
  std::vector<uint32_t> next_desc_;
};

}  // namespace hvmm::vmm::testing
