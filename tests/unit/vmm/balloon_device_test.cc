// Unit tests of virtio-balloon over the virtio-mmio transport, driven like a guest driver
// would: negotiate, set up the queues, inflate, deflate, stats, free page reporting, targets.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <thread>

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

// The RAM the balloon checks PFNs against: 64 MiB low, 16 MiB above 4 GiB.
const std::vector<IpaRange> kRam = {{Ipa(0), 64 << 20}, {Ipa(uint64_t{4} << 30), 16 << 20}};
constexpr uint64_t kAllFeatures =
    feature(virtio::kFeatureVersion1) | feature(kBalloonFeatureStatsVq) |
    feature(kBalloonFeatureDeflateOnOom) | feature(kBalloonFeatureReporting);
constexpr uint64_t kData = 0x40000;  // where the driver's buffers go
constexpr unsigned kInflate = 0, kDeflate = 1, kStats = 2, kReporting = 3;

class BalloonTest : public ::testing::Test {
 protected:
  // Bring the device up with `features` and every queue they give.
  void bring_up(uint64_t features = kAllFeatures) {
    ASSERT_TRUE(driver.negotiate(features));
    for (unsigned q = 0; q < balloon_queues(features).count; ++q) {
      driver.setup_queue(q, default_layout(q));
    }
    driver.driver_ok();
    ASSERT_EQ(driver.status() & virtio::kStatusDriverOk, virtio::kStatusDriverOk);
  }
  // Write `pfns` at `at` and send them as one buffer on `queue`.
  uint16_t send_pfns(unsigned queue, const std::vector<uint32_t>& pfns, uint64_t at = kData) {
    std::memcpy(memory.ram() + at, pfns.data(), pfns.size() * 4);
    const uint16_t head =
        driver.add_chain(queue, {Buffer{Ipa(at), static_cast<uint32_t>(pfns.size() * 4), false}});
    driver.notify(queue);
    return head;
  }

  GuardedGuestMemory memory{1 << 20};
  FakeBalloonBackend backend;
  CountingInterrupt irq;
  std::vector<std::string> logs;
  BalloonDevice balloon{backend, kRam, BalloonOptions{0, true}};
  virtio::MmioTransport transport{"virtio-balloon@test", balloon, memory, irq,
                                  [this](const std::string& line) { logs.push_back(line); }};
  TestDriver driver{transport, memory};
};

// The device identifies itself as a version-2 virtio-mmio balloon offering exactly
// VERSION_1, INDIRECT_DESC, STATS_VQ, DEFLATE_ON_OOM and (configured) REPORTING.
TEST_F(BalloonTest, IdentifiesAndOffersItsFeatures) {
  EXPECT_EQ(driver.read32(virtio::kRegMagic), 0x74726976u);
  EXPECT_EQ(driver.read32(virtio::kRegVersion), 2u);
  EXPECT_EQ(driver.read32(virtio::kRegDeviceId), 5u);
  EXPECT_EQ(driver.device_features(), kAllFeatures | feature(virtio::kFeatureIndirectDesc));
}

// The whole script of a well-behaved driver: inflate 256 PFNs, deflate some, stats, report;
// the backend hears coalesced runs and every buffer comes back on the used ring.
TEST_F(BalloonTest, WellBehavedDriverScript) {
  bring_up();
  std::vector<uint32_t> pfns(256);
  std::iota(pfns.begin(), pfns.end(), 0x1000u);
  std::shuffle(pfns.begin(), pfns.end(), std::mt19937(7));
  const unsigned irqs = irq.raised;
  const uint16_t head = send_pfns(kInflate, pfns);
  ASSERT_EQ(backend.inflated.size(), 1u);
  EXPECT_EQ(backend.inflated[0], (IpaRange{Ipa(0x1000000), 256 * kPageSize}));
  EXPECT_EQ(driver.used_index(kInflate), 1);
  EXPECT_EQ(driver.used(kInflate, 0), std::make_pair(uint32_t{head}, 0u));
  EXPECT_GT(irq.raised, irqs);
  EXPECT_NE(driver.read32(virtio::kRegInterruptStatus) & virtio::kInterruptUsedBuffer, 0u);
  driver.write32(virtio::kRegInterruptAck, virtio::kInterruptUsedBuffer);
  EXPECT_EQ(driver.read32(virtio::kRegInterruptStatus), 0u);

  send_pfns(kDeflate, {0x1005, 0x1004, 0x10ff, 0x1004});
  ASSERT_EQ(backend.deflated.size(), 2u);
  EXPECT_EQ(backend.deflated[0], (IpaRange{Ipa(0x1004000), 2 * kPageSize}));
  EXPECT_EQ(backend.deflated[1], (IpaRange{Ipa(0x10ff000), kPageSize}));
  EXPECT_EQ(driver.used_index(kDeflate), 1);

  // Stats: every Linux 6.12 tag plus one unknown tag.
  std::vector<uint8_t> records;
  for (uint16_t tag : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 99}) {
    const uint64_t value = 1000 + tag;
    records.insert(records.end(), reinterpret_cast<const uint8_t*>(&tag),
                   reinterpret_cast<const uint8_t*>(&tag) + 2);
    records.insert(records.end(), reinterpret_cast<const uint8_t*>(&value),
                   reinterpret_cast<const uint8_t*>(&value) + 8);
  }
  std::memcpy(memory.ram() + kData + 0x1000, records.data(), records.size());
  const uint16_t stats_head = driver.add_chain(
      kStats, {Buffer{Ipa(kData + 0x1000), static_cast<uint32_t>(records.size()), false}});
  driver.notify(kStats);
  EXPECT_EQ(driver.used_index(kStats), 0) << "the stats buffer is held until the host asks";
  BalloonStatistics stats = balloon.statistics();
  for (unsigned tag = 0; tag < kBalloonStatCount; ++tag) {
    EXPECT_EQ(stats.guest_stats[tag], 1000u + tag) << balloon_stat_name(static_cast<uint16_t>(tag));
  }
  EXPECT_EQ(stats.unknown_stat_tags, 1u);
  EXPECT_TRUE(stats.guest_stats_time.has_value());
  balloon.request_stats();
  EXPECT_EQ(driver.used_index(kStats), 1);
  EXPECT_EQ(driver.used(kStats, 0).first, stats_head);

  // Free page reporting: two 2 MiB ranges (writable, as Linux sends them) and one in the hole.
  driver.add_chain(kReporting,
                   {Buffer{Ipa(0x200000), 2 << 20, true}, Buffer{Ipa(0x400000), 2 << 20, true},
                    Buffer{Ipa(uint64_t{3} << 30), 2 << 20, true}});
  driver.notify(kReporting);
  ASSERT_EQ(backend.reported.size(), 1u);
  EXPECT_EQ(backend.reported[0], (IpaRange{Ipa(0x200000), 4 << 20}));
  EXPECT_EQ(driver.used_index(kReporting), 1);

  stats = balloon.statistics();
  EXPECT_EQ(stats.inflated_pages, 256u);
  EXPECT_EQ(stats.deflated_pages, 3u);
  EXPECT_EQ(stats.reported_pages, 1024u);
  EXPECT_EQ(stats.refused_pfns, 512u);  // the hole range's pages
  EXPECT_EQ(stats.features, kAllFeatures);
  EXPECT_FALSE(driver.needs_reset());
  EXPECT_TRUE(memory.guards_intact());
  EXPECT_TRUE(logs.empty());
}

// PFNs outside RAM or in the MMIO hole are refused one by one and counted; the rest of the
// buffer is still released and the buffer returned.
TEST_F(BalloonTest, RefusesPfnsOutsideRamAndReturnsTheBuffer) {
  bring_up();
  const uint32_t hole = (uint64_t{3} << 30) >> kPageShift;
  const uint32_t past_low = (64 << 20) >> kPageShift;
  const uint32_t high = (uint64_t{4} << 30) >> kPageShift;
  const uint16_t head = send_pfns(kInflate, {hole, 5, past_low, high, 0xffffffff});
  EXPECT_EQ(balloon.statistics().refused_pfns, 3u);
  ASSERT_EQ(backend.inflated.size(), 2u);
  EXPECT_EQ(backend.inflated[0], (IpaRange{Ipa(5 * kPageSize), kPageSize}));
  EXPECT_EQ(backend.inflated[1], (IpaRange{Ipa(uint64_t{4} << 30), kPageSize}));
  EXPECT_EQ(driver.used(kInflate, 0).first, head);
  EXPECT_EQ(driver.used_index(kInflate), 1);
  EXPECT_FALSE(driver.needs_reset());
}

// A buffer of more than 256 PFNs breaks the protocol: NEEDS_RESET, nothing released.
TEST_F(BalloonTest, MoreThan256PfnsNeedsReset) {
  bring_up();
  send_pfns(kInflate, std::vector<uint32_t>(257, 9));
  EXPECT_TRUE(driver.needs_reset());
  EXPECT_TRUE(backend.inflated.empty());
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].find("inflate buffer"), std::string::npos) << logs[0];
}

// Without STATS_VQ the reporting queue is numbered 2, and queue 3 does not exist.
TEST_F(BalloonTest, QueuesAreNumberedCompactly) {
  const uint64_t features = feature(virtio::kFeatureVersion1) | feature(kBalloonFeatureReporting);
  ASSERT_TRUE(driver.negotiate(features));
  driver.write32(virtio::kRegQueueSel, 2);
  EXPECT_EQ(driver.read32(virtio::kRegQueueNumMax), 256u);
  driver.write32(virtio::kRegQueueSel, 3);
  EXPECT_EQ(driver.read32(virtio::kRegQueueNumMax), 0u);
  for (unsigned q = 0; q < 3; ++q) {
    driver.setup_queue(q, default_layout(q));
  }
  driver.driver_ok();
  driver.add_chain(2, {Buffer{Ipa(0x800000), 4096, true}});
  driver.notify(2);
  ASSERT_EQ(backend.reported.size(), 1u);
  EXPECT_EQ(backend.reported[0], (IpaRange{Ipa(0x800000), kPageSize}));
}

// A new target changes num_pages and the config generation and raises a config-change
// interrupt; wait_for_target returns once the driver writes the same `actual`.
TEST_F(BalloonTest, TargetChangeIsAnnouncedAndAwaited) {
  bring_up();
  const uint32_t generation = driver.read32(virtio::kRegConfigGeneration);
  balloon.set_target_pages(1000);
  EXPECT_EQ(driver.read32(virtio::kRegConfig), 1000u);
  EXPECT_NE(driver.read32(virtio::kRegConfigGeneration), generation);
  EXPECT_NE(driver.read32(virtio::kRegInterruptStatus) & virtio::kInterruptConfigChange, 0u);
  auto soon = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
  EXPECT_FALSE(balloon.wait_for_target(soon).ok());
  std::thread guest([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    driver.write32(virtio::kRegConfig + 4, 1000);
  });
  auto waited =
      balloon.wait_for_target(std::chrono::steady_clock::now() + std::chrono::seconds(10));
  guest.join();
  EXPECT_TRUE(waited.ok()) << waited.error().message;
  EXPECT_EQ(balloon.statistics().actual_pages, 1000u);
}

// Writing num_pages (the device's half of the config) breaks the protocol.
TEST_F(BalloonTest, ConfigWriteOtherThanActualNeedsReset) {
  bring_up();
  driver.write32(virtio::kRegConfig, 5);
  EXPECT_TRUE(driver.needs_reset());
  EXPECT_EQ(balloon.statistics().target_pages, 0u);
}

// A second stats buffer while the device holds one breaks the protocol.
TEST_F(BalloonTest, SecondStatsBufferNeedsReset) {
  bring_up();
  driver.add_chain(kStats, {Buffer{Ipa(kData), 10, false}});
  driver.add_chain(kStats, {Buffer{Ipa(kData), 10, false}});
  driver.notify(kStats);
  EXPECT_TRUE(driver.needs_reset());
}

}  // namespace
}  // namespace hvmm::vmm
