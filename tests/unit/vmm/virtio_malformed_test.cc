// Replay tests of every malformed case a guest can build (issue 8): each must leave the
// device in NEEDS_RESET with a config-change interrupt, log the reason once, count it, and
// touch nothing outside the fake guest RAM; a reset then brings the device back.
#include <gtest/gtest.h>

#include "hvmm/vmm/devices/balloon/balloon_device.h"
#include "virtio_harness.h"

namespace hvmm::vmm {
namespace {

using testing::CountingInterrupt;
using testing::default_layout;
using testing::FakeBalloonBackend;
using testing::GuardedGuestMemory;
using testing::TestDriver;
using virtio::Buffer;
using virtio::feature;

constexpr uint64_t kRamBytes = 1 << 20;
const std::vector<IpaRange> kRam = {{Ipa(0), kRamBytes}};
constexpr uint64_t kFeatures =
    feature(virtio::kFeatureVersion1) | feature(virtio::kFeatureIndirectDesc);
constexpr uint64_t kData = 0x40000;

class MalformedTest : public ::testing::Test {
 protected:
  // Negotiate and enable the inflate and deflate queues.
  void bring_up(uint64_t features = kFeatures) {
    ASSERT_TRUE(driver.negotiate(features));
    driver.setup_queue(0, default_layout(0));
    driver.setup_queue(1, default_layout(1));
    driver.driver_ok();
    ASSERT_FALSE(driver.needs_reset());
  }
  // The device is in NEEDS_RESET, said why once, and nothing outside RAM changed.
  void expect_needs_reset(const char* reason_part) {
    EXPECT_TRUE(driver.needs_reset());
    EXPECT_NE(driver.read32(virtio::kRegInterruptStatus) & virtio::kInterruptConfigChange, 0u);
    EXPECT_GE(transport.malformed_count(), 1u);
    ASSERT_EQ(logs.size(), 1u);
    EXPECT_NE(logs[0].find(reason_part), std::string::npos) << logs[0];
    EXPECT_TRUE(memory.guards_intact());
    EXPECT_TRUE(backend.inflated.empty());
  }

  GuardedGuestMemory memory{kRamBytes};
  FakeBalloonBackend backend;
  CountingInterrupt irq;
  std::vector<std::string> logs;
  BalloonDevice balloon{backend, kRam, BalloonOptions{}};
  virtio::MmioTransport transport{"virtio-balloon@test", balloon, memory, irq,
                                  [this](const std::string& line) { logs.push_back(line); }};
  TestDriver driver{transport, memory};
};

// A descriptor whose NEXT points back at itself is a loop: refused, not followed forever.
TEST_F(MalformedTest, DescriptorLoop) {
  bring_up();
  driver.put_descriptor(0, 0, kData, 4, virtio::kDescNext, 0);
  driver.publish(0, 0);
  driver.notify(0);
  expect_needs_reset("longer than the queue size");
}

// An indirect table of more entries than the queue size is refused.
TEST_F(MalformedTest, IndirectTableLongerThanTheQueue) {
  ASSERT_TRUE(driver.negotiate(kFeatures));
  driver.setup_queue(0, default_layout(0, 4));
  driver.driver_ok();
  driver.put_descriptor(0, 0, kData, 5 * 16, virtio::kDescIndirect, 0);
  driver.publish(0, 0);
  driver.notify(0);
  expect_needs_reset("indirect table");
}

// A chain of 5 direct descriptors in a 4-entry queue (a cycle through all) is refused.
TEST_F(MalformedTest, DirectChainLongerThanTheQueue) {
  ASSERT_TRUE(driver.negotiate(kFeatures));
  driver.setup_queue(0, default_layout(0, 4));
  driver.driver_ok();
  for (uint16_t i = 0; i < 4; ++i) {
    driver.put_descriptor(0, i, kData, 4, virtio::kDescNext, static_cast<uint16_t>((i + 1) % 4));
  }
  driver.publish(0, 0);
  driver.notify(0);
  expect_needs_reset("longer than the queue size");
}

// A buffer address outside RAM fails through GuestAccess, not by touching host memory.
TEST_F(MalformedTest, AddressOutsideRam) {
  bring_up();
  driver.add_chain(0, {Buffer{Ipa(kRamBytes + 0x1000), 8, false}});
  driver.notify(0);
  expect_needs_reset("outside RAM");
  EXPECT_GE(memory.refused(), 1u);
}

// A buffer that starts in RAM but whose length runs past its end is refused the same way.
TEST_F(MalformedTest, LengthOutsideRam) {
  bring_up();
  driver.add_chain(0, {Buffer{Ipa(kRamBytes - 8), 16, false}});
  driver.notify(0);
  expect_needs_reset("outside RAM");
}

// A buffer whose address + length wraps the 64-bit space is refused before any access.
TEST_F(MalformedTest, AddressWraps) {
  bring_up();
  driver.add_chain(0, {Buffer{Ipa(~uint64_t{0} - 4), 1024, false}});
  driver.notify(0);
  expect_needs_reset("wraps");
}

// An available index more than the queue size ahead of the device is refused.
TEST_F(MalformedTest, AvailableIndexTooFarAhead) {
  bring_up();
  driver.set_avail_index(0, 257);
  driver.notify(0);
  expect_needs_reset("ahead");
}

// A head index outside the descriptor table is refused.
TEST_F(MalformedTest, HeadOutsideTheTable) {
  bring_up();
  driver.publish(0, 300);
  driver.notify(0);
  expect_needs_reset("head 300");
}

// A NEXT index outside the table is refused.
TEST_F(MalformedTest, NextOutsideTheTable) {
  bring_up();
  driver.put_descriptor(0, 0, kData, 4, virtio::kDescNext, 256);
  driver.publish(0, 0);
  driver.notify(0);
  expect_needs_reset("next index");
}

// An indirect table inside an indirect table is refused.
TEST_F(MalformedTest, NestedIndirect) {
  bring_up();
  driver.put_descriptor(0, 0, kData, 16, virtio::kDescIndirect, 0);
  memory.store<uint64_t>(kData, kData + 0x100);
  memory.store<uint32_t>(kData + 8, 16);
  memory.store<uint16_t>(kData + 12, virtio::kDescIndirect);
  driver.publish(0, 0);
  driver.notify(0);
  expect_needs_reset("inside an indirect");
}

// INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated is refused.
TEST_F(MalformedTest, IndirectWithoutTheFeature) {
  bring_up(feature(virtio::kFeatureVersion1));
  driver.put_descriptor(0, 0, kData, 16, virtio::kDescIndirect, 0);
  driver.publish(0, 0);
  driver.notify(0);
  expect_needs_reset("without VIRTIO_F_INDIRECT_DESC");
}

// A queue size that is not a power of two is refused when the queue is enabled.
TEST_F(MalformedTest, QueueSizeNotAPowerOfTwo) {
  ASSERT_TRUE(driver.negotiate(kFeatures));
  driver.setup_queue(0, default_layout(0, 100));
  expect_needs_reset("not a power of two");
}

// A queue size above QueueNumMax is refused.
TEST_F(MalformedTest, QueueSizeAboveTheMaximum) {
  ASSERT_TRUE(driver.negotiate(kFeatures));
  driver.setup_queue(0, default_layout(0, 512));
  expect_needs_reset("not a power of two in [1, 256]");
}

// A used ring outside RAM is refused when the queue is enabled.
TEST_F(MalformedTest, RingOutsideRam) {
  ASSERT_TRUE(driver.negotiate(kFeatures));
  testing::QueueLayout layout = default_layout(0);
  layout.used = kRamBytes - 0x100;
  driver.setup_queue(0, layout);
  expect_needs_reset("used ring");
}

// Writes to read-only registers (magic, device features, QueueNumMax, interrupt status,
// config generation) are refused.
TEST_F(MalformedTest, WriteToReadOnlyRegister) {
  for (uint64_t reg : {virtio::kRegMagic, virtio::kRegDeviceFeatures, virtio::kRegQueueNumMax,
                       virtio::kRegInterruptStatus, virtio::kRegConfigGeneration}) {
    logs.clear();
    driver.write32(virtio::kRegStatus, 0);
    driver.write32(reg, 1);
    expect_needs_reset("read-only");
  }
}

// A 2-byte register read answers all-ones and is refused.
TEST_F(MalformedTest, WrongWidthRead) {
  uint16_t value = 0;
  transport.bus_read(virtio::kRegMagic, {reinterpret_cast<uint8_t*>(&value), 2});
  EXPECT_EQ(value, 0xffff);
  expect_needs_reset("2-byte read");
}

// A 1-byte register write is refused.
TEST_F(MalformedTest, WrongWidthWrite) {
  const uint8_t byte = 1;
  transport.bus_write(virtio::kRegStatus, {&byte, 1});
  expect_needs_reset("1-byte write");
  EXPECT_EQ(driver.status() & ~virtio::kStatusNeedsReset, 0u);
}

// A misaligned register access is refused.
TEST_F(MalformedTest, MisalignedRegister) {
  uint32_t value = 0;
  transport.bus_read(virtio::kRegMagic + 2, {reinterpret_cast<uint8_t*>(&value), 4});
  expect_needs_reset("read at offset 0x2");
}

// DRIVER_OK before FEATURES_OK skips a step of the initialization.
TEST_F(MalformedTest, StatusSkipsAStep) {
  driver.write32(virtio::kRegStatus,
                 virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusDriverOk);
  expect_needs_reset("skips a step");
}

// Features without VERSION_1 are not accepted: FEATURES_OK stays clear (no NEEDS_RESET).
TEST_F(MalformedTest, FeaturesWithoutVersion1AreRefused) {
  EXPECT_FALSE(driver.negotiate(0));
  EXPECT_FALSE(driver.needs_reset());
  EXPECT_FALSE(driver.negotiate(kFeatures | feature(40)));  // not offered
  EXPECT_TRUE(driver.negotiate(kFeatures));
}

// A malformed episode is logged once however often the guest repeats it, counted each
// time; the VM goes on and a reset makes the device usable again.
TEST_F(MalformedTest, LoggedOnceCountedAlwaysAndRecoversAfterReset) {
  bring_up();
  driver.set_avail_index(0, 300);
  driver.notify(0);
  driver.write32(virtio::kRegMagic, 0);
  driver.write32(virtio::kRegMagic, 0);
  EXPECT_EQ(transport.malformed_count(), 3u);
  EXPECT_EQ(logs.size(), 1u);
  bring_up();
  EXPECT_FALSE(driver.needs_reset());
  std::memcpy(memory.ram() + kData, "\x07\x00\x00\x00", 4);
  driver.add_chain(0, {Buffer{Ipa(kData), 4, false}});
  driver.notify(0);
  ASSERT_EQ(backend.inflated.size(), 1u);
  EXPECT_EQ(backend.inflated[0], (IpaRange{Ipa(7 * kPageSize), kPageSize}));
}

// Once in NEEDS_RESET the device ignores its queues: nothing is released.
TEST_F(MalformedTest, NeedsResetIgnoresQueues) {
  bring_up();
  driver.write32(virtio::kRegMagic, 0);
  ASSERT_TRUE(driver.needs_reset());
  std::memcpy(memory.ram() + kData, "\x07\x00\x00\x00", 4);
  driver.add_chain(0, {Buffer{Ipa(kData), 4, false}});
  driver.notify(0);
  EXPECT_TRUE(backend.inflated.empty());
  EXPECT_EQ(driver.used_index(0), 0);
}

}  // namespace
}  // namespace hvmm::vmm
