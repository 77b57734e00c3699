// Unit tests of the split virtqueue on well-formed input: direct and indirect chains, the
// used ring, index wrap-around.
#include <gtest/gtest.h>

#include "hvmm/vmm/devices/virtio/queue.h"
#include "virtio_harness.h"

namespace hvmm::vmm {
namespace {

using testing::GuardedGuestMemory;
using virtio::Virtqueue;

constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;

// A 4-entry queue over guarded RAM, enabled with indirect descriptors allowed.
class VirtqueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    queue.set_size(4);
    queue.set_descriptor_table(Ipa(kDesc));
    queue.set_available_ring(Ipa(kAvail));
    queue.set_used_ring(Ipa(kUsed));
    ASSERT_TRUE(queue.enable(memory, true).ok());
  }
  void descriptor(uint64_t table, uint16_t i, uint64_t address, uint32_t length, uint16_t flags,
                  uint16_t next) {
    memory.store<uint64_t>(table + 16 * i, address);
    memory.store<uint32_t>(table + 16 * i + 8, length);
    memory.store<uint16_t>(table + 16 * i + 12, flags);
    memory.store<uint16_t>(table + 16 * i + 14, next);
  }
  void make_available(uint16_t head) {
    memory.store<uint16_t>(kAvail + 4 + 2 * (avail % 4), head);
    memory.store<uint16_t>(kAvail + 2, ++avail);
  }

  GuardedGuestMemory memory{1 << 20};
  Virtqueue queue{0, 256};
  uint16_t avail = 0;
};

// A readable-then-writable direct chain comes out in order with its lengths.
TEST_F(VirtqueueTest, DirectChain) {
  descriptor(kDesc, 2, 0x8000, 10, virtio::kDescNext, 3);
  descriptor(kDesc, 3, 0x9000, 20, virtio::kDescWrite, 0);
  make_available(2);
  auto chain = queue.pop(memory);
  ASSERT_TRUE(chain.ok() && chain->has_value());
  EXPECT_EQ((*chain)->head, 2);
  ASSERT_EQ((*chain)->buffers.size(), 2u);
  EXPECT_EQ((*chain)->readable_bytes(), 10u);
  EXPECT_EQ((*chain)->writable_bytes(), 20u);
  EXPECT_TRUE((*chain)->buffers[1].writable);
  auto none = queue.pop(memory);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

// An indirect table of three descriptors yields those three.
TEST_F(VirtqueueTest, IndirectChain) {
  const uint64_t table = 0x5000;
  descriptor(table, 0, 0x8000, 1, virtio::kDescNext, 1);
  descriptor(table, 1, 0x8100, 2, virtio::kDescNext, 2);
  descriptor(table, 2, 0x8200, 3, 0, 0);
  descriptor(kDesc, 0, table, 48, virtio::kDescIndirect, 0);
  make_available(0);
  auto chain = queue.pop(memory);
  ASSERT_TRUE(chain.ok() && chain->has_value()) << (chain.ok() ? "" : chain.error().message);
  ASSERT_EQ((*chain)->buffers.size(), 3u);
  EXPECT_EQ((*chain)->buffers[2].address, Ipa(0x8200));
  EXPECT_EQ((*chain)->readable_bytes(), 6u);
}

// Used elements land at the free-running index modulo the size, and the index wraps at
// 2^16 without being mistaken for a bad available index.
TEST_F(VirtqueueTest, UsedRingAndIndexWrap) {
  descriptor(kDesc, 1, 0x8000, 4, 0, 0);
  for (int i = 0; i < 70000; ++i) {
    make_available(1);
    auto chain = queue.pop(memory);
    ASSERT_TRUE(chain.ok() && chain->has_value()) << i;
    ASSERT_TRUE(queue.push_used(memory, 1, 7).ok());
  }
  EXPECT_EQ(memory.load<uint16_t>(kUsed + 2), static_cast<uint16_t>(70000));
  const uint64_t last = kUsed + 4 + 8 * ((70000 - 1) % 4);
  EXPECT_EQ(memory.load<uint32_t>(last), 1u);
  EXPECT_EQ(memory.load<uint32_t>(last + 4), 7u);
}

// read_chain/write_chain gather and scatter across descriptors.
TEST_F(VirtqueueTest, ChainCopies) {
  virtio::DescriptorChain chain{
      0, {{Ipa(0x8000), 2, false}, {Ipa(0x9000), 3, false}, {Ipa(0xa000), 4, true}}};
  memory.store<uint16_t>(0x8000, 0x0201);
  memory.store<uint16_t>(0x9000, 0x0403);
  memory.store<uint8_t>(0x9002, 0x05);
  uint8_t out[5] = {};
  ASSERT_TRUE(virtio::read_chain(memory, chain, out).ok());
  EXPECT_EQ(out[4], 5);
  uint8_t too_much[6] = {};
  EXPECT_FALSE(virtio::read_chain(memory, chain, too_much).ok());
  const uint8_t data[4] = {9, 9, 9, 9};
  ASSERT_TRUE(virtio::write_chain(memory, chain, data).ok());
  EXPECT_EQ(memory.load<uint32_t>(0xa000), 0x09090909u);
}

}  // namespace
}  // namespace hvmm::vmm
