// Unit tests of the device bus, the exit port and the virtio-mmio layout on the command line.
#include <gtest/gtest.h>

#include <vector>

#include "hvmm/vmm/devices/bus.h"
#include "hvmm/vmm/devices/exit_port.h"
#include "hvmm/vmm/devices/virtio/mmio_layout.h"

namespace hvmm::vmm {
namespace {

// RecordingDevice remembers the offsets it was accessed at and answers reads with `fill`.
class RecordingDevice final : public BusDevice {
 public:
  explicit RecordingDevice(uint8_t fill) : fill_(fill) {}
  void bus_read(uint64_t offset, std::span<uint8_t> data) override {
    offsets.push_back(offset);
    std::fill(data.begin(), data.end(), fill_);
  }
  void bus_write(uint64_t offset, std::span<const uint8_t> /*data*/) override {
    offsets.push_back(offset);
  }
  std::vector<uint64_t> offsets;

 private:
  uint8_t fill_;
};

// Each access reaches the device whose range holds it, at the offset inside that range.
TEST(DeviceBus, DispatchesByRangeWithOffsets) {
  Bus bus("MMIO");
  RecordingDevice a(0xaa), b(0xbb);
  ASSERT_TRUE(bus.add(0x1000, 0x1000, "a", a).ok());
  ASSERT_TRUE(bus.add(0x3000, 0x100, "b", b).ok());
  uint8_t byte = 0;
  EXPECT_TRUE(bus.read(0x1ffc, {&byte, 1}));
  EXPECT_EQ(byte, 0xaa);
  EXPECT_TRUE(bus.write(0x3010, {&byte, 1}));
  EXPECT_EQ(a.offsets, std::vector<uint64_t>{0xffc});
  EXPECT_EQ(b.offsets, std::vector<uint64_t>{0x10});
}

// Addresses between, before and after the ranges, and accesses that straddle a range's
// end, are claimed by no device.
TEST(DeviceBus, UnclaimedAccessesReachNoDevice) {
  Bus bus("MMIO");
  RecordingDevice a(0xaa);
  ASSERT_TRUE(bus.add(0x1000, 0x1000, "a", a).ok());
  uint8_t word[4] = {};
  EXPECT_FALSE(bus.read(0xfff, {word, 1}));
  EXPECT_FALSE(bus.read(0x2000, {word, 1}));
  EXPECT_FALSE(bus.read(0x1ffe, word));  // straddles the end
  EXPECT_FALSE(bus.find(0, 1).has_value());
  EXPECT_TRUE(a.offsets.empty());
}

// Overlapping claims are refused with an error naming both devices; empty and wrapping ones
// are refused too; the bus is unchanged.
TEST(DeviceBus, RefusesOverlapsNamingBoth) {
  Bus bus("port I/O");
  RecordingDevice a(0), b(0);
  ASSERT_TRUE(bus.add(0x3f8, 8, "COM1", a).ok());
  auto overlap = bus.add(0x3fc, 8, "other", b);
  ASSERT_FALSE(overlap.ok());
  EXPECT_NE(overlap.error().message.find("COM1"), std::string::npos) << overlap.error().message;
  EXPECT_NE(overlap.error().message.find("other"), std::string::npos) << overlap.error().message;
  EXPECT_FALSE(bus.add(0x3f0, 9, "below", b).ok());
  EXPECT_FALSE(bus.add(0x100, 0, "empty", b).ok());
  EXPECT_FALSE(bus.add(~uint64_t{0} - 1, 4, "wrapping", b).ok());
  EXPECT_TRUE(bus.add(0x3f0, 8, "adjacent", b).ok());
  EXPECT_EQ(bus.size(), 2u);
}

// Lookup among many ranges finds the right one (the map is searched, not scanned by luck).
TEST(DeviceBus, FindsAmongManyRanges) {
  Bus bus("MMIO");
  std::vector<std::unique_ptr<RecordingDevice>> devices;
  for (uint64_t i = 0; i < 1000; ++i) {
    devices.push_back(std::make_unique<RecordingDevice>(0));
    ASSERT_TRUE(bus.add(i * 0x2000, 0x1000, "d" + std::to_string(i), *devices.back()).ok());
  }
  for (uint64_t i = 0; i < 1000; i += 37) {
    auto hit = bus.find(i * 0x2000 + 0x123, 4);
    ASSERT_TRUE(hit.has_value());
    EXPECT_EQ(hit->device, devices[i].get());
    EXPECT_EQ(hit->offset, 0x123u);
    EXPECT_FALSE(bus.find(i * 0x2000 + 0x1000, 1).has_value());
  }
}

// The exit port passes the byte written on and reads as all-ones.
TEST(DeviceBus, ExitPortReportsTheByte) {
  std::vector<uint8_t> exits;
  ExitPort port([&](uint8_t status) { exits.push_back(status); });
  const uint8_t value = 42;
  port.bus_write(0, {&value, 1});
  uint8_t read = 0;
  port.bus_read(0, {&read, 1});
  EXPECT_EQ(exits, std::vector<uint8_t>{42});
  EXPECT_EQ(read, 0xff);
}

// Slots are 4 KiB windows from 0xd0000000 with IRQs from 5, clear of the IOAPIC, LAPIC,
// TSS and COM1's IRQ 4; there are at most 8.
TEST(VirtioMmioLayout, SlotsAvoidTheMachinesFixedDevices) {
  for (unsigned i = 0; i < virtio::kMaxMmioDevices; ++i) {
    auto slot = virtio::mmio_slot(i);
    ASSERT_TRUE(slot.ok()) << slot.error().message;
    EXPECT_EQ(slot->window.start, Ipa(0xd0000000 + i * 0x1000));
    EXPECT_EQ(slot->window.size, 0x1000u);
    EXPECT_EQ(slot->irq, 5 + i);
  }
  EXPECT_FALSE(virtio::mmio_slot(virtio::kMaxMmioDevices).ok());
}

// The announcement is the Linux syntax, appended to the user's command line.
TEST(VirtioMmioLayout, AnnouncedInLinuxSyntax) {
  std::vector<virtio::MmioSlot> slots = {*virtio::mmio_slot(0), *virtio::mmio_slot(1)};
  EXPECT_EQ(virtio::announce_on_cmdline("console=ttyS0", slots),
            "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 "
            "virtio_mmio.device=4K@0xd0001000:6");
  EXPECT_EQ(virtio::announce_on_cmdline("", {slots[0]}), "virtio_mmio.device=4K@0xd0000000:5");
  EXPECT_EQ(virtio::announce_on_cmdline("quiet", {}), "quiet");
}

}  // namespace
}  // namespace hvmm::vmm
