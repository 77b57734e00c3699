// The hvmm.v1 stage-2 messages serialize and parse back to the same values.
#include <gtest/gtest.h>

#include "hvmm/v1/stage2.pb.h"

namespace {

// A mapping survives a wire round trip field by field.
TEST(ProtoMessagesTest, MappingRoundTrips) {
  hvmm::v1::Mapping mapping;
  mapping.mutable_range()->set_start(0x4000'0000);
  mapping.mutable_range()->set_size(0x20'0000);
  mapping.set_host_offset(0x1234'5000);
  mapping.set_permissions(hvmm::v1::PERMISSIONS_READ_ONLY);
  mapping.mutable_state()->set_backing(hvmm::v1::BACKING_RECLAIMED);
  mapping.set_largest_block_level(1);

  hvmm::v1::Mapping parsed;
  ASSERT_TRUE(parsed.ParseFromString(mapping.SerializeAsString()));
  EXPECT_EQ(parsed.range().start(), 0x4000'0000u);
  EXPECT_EQ(parsed.range().size(), 0x20'0000u);
  EXPECT_EQ(parsed.host_offset(), 0x1234'5000u);
  EXPECT_EQ(parsed.permissions(), hvmm::v1::PERMISSIONS_READ_ONLY);
  EXPECT_EQ(parsed.state().backing(), hvmm::v1::BACKING_RECLAIMED);
  EXPECT_EQ(parsed.largest_block_level(), 1u);
}

// A fault record keeps its IPA and classification.
TEST(ProtoMessagesTest, FaultRoundTrips) {
  hvmm::v1::Fault fault;
  fault.set_vmid(7);
  fault.set_ipa(0xfeed'0000);
  fault.set_access(hvmm::v1::ACCESS_WRITE);
  fault.set_kind(hvmm::v1::FAULT_KIND_MMIO_UNBACKED);
  fault.set_resolution(hvmm::v1::FAULT_RESOLUTION_EMULATED);

  hvmm::v1::Fault parsed;
  ASSERT_TRUE(parsed.ParseFromString(fault.SerializeAsString()));
  EXPECT_EQ(parsed.vmid(), 7u);
  EXPECT_EQ(parsed.ipa(), 0xfeed'0000u);
  EXPECT_EQ(parsed.kind(), hvmm::v1::FAULT_KIND_MMIO_UNBACKED);
  EXPECT_EQ(parsed.resolution(), hvmm::v1::FAULT_RESOLUTION_EMULATED);
}

}  // namespace
