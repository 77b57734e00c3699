// The VM process's conversions to hvmm.v1: change reasons both ways, fault records, dump
// runs, balloon figures and fault counts.
#include <gtest/gtest.h>

#include "hvmm/daemon/vmproc/proto_convert.h"

namespace hvmm::daemon::vmproc {
namespace {

// Every stage-2 reason has the proto value of the same name, and back.
TEST(VmprocProtoConvert, ChangeReasonsRoundTrip) {
  for (int value = 0; value <= static_cast<int>(stage2::ChangeReason::kShootdown); ++value) {
    const auto reason = static_cast<stage2::ChangeReason>(value);
    const auto proto = change_reason_to_proto(reason);
    std::string name = stage2::change_reason_name(reason);
    for (char& c : name) {
      c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    EXPECT_EQ(hvmm::v1::ChangeReason_Name(proto), "CHANGE_REASON_" + name);
    auto back = change_reason_from_proto(proto, stage2::ChangeReason::kMap, "reason");
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, reason);
  }
  auto fallback = change_reason_from_proto(0, stage2::ChangeReason::kShootdown, "reason");
  ASSERT_TRUE(fallback.ok());
  EXPECT_EQ(*fallback, stage2::ChangeReason::kShootdown);
  auto unknown = change_reason_from_proto(99, stage2::ChangeReason::kShootdown, "reason");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().message.rfind("reason:", 0), 0u);
}

// A record keeps every field; a record of no vCPU has kNoVcpu; resolutions report as the
// proto values fault_kind.h names.
TEST(VmprocProtoConvert, FaultRecord) {
  vmm::FaultRecord record;
  record.time = std::chrono::system_clock::time_point(std::chrono::seconds(10));
  record.vm = "a";
  record.vmid = 3;
  record.vcpu = 1;
  record.ipa = Ipa(0xd0000000);
  record.write = true;
  record.size = 4;
  record.set_outcome(vmm::FaultKind::kMmioUnbacked, vmm::FaultResolution::kWriteDropped);
  record.latency_ns = 77;
  const auto fault = fault_to_proto(record);
  EXPECT_EQ(fault.time_unix_ns(), 10'000'000'000u);
  EXPECT_EQ(fault.vm(), "a");
  EXPECT_EQ(fault.vmid(), 3u);
  EXPECT_EQ(fault.vcpu(), 1u);
  EXPECT_EQ(fault.ipa(), 0xd0000000u);
  EXPECT_EQ(fault.access(), hvmm::v1::ACCESS_WRITE);
  EXPECT_EQ(fault.size(), 4u);
  EXPECT_EQ(fault.kind(), hvmm::v1::FAULT_KIND_MMIO_UNBACKED);
  EXPECT_EQ(fault.resolution(), hvmm::v1::FAULT_RESOLUTION_EMULATED);
  EXPECT_EQ(fault.latency_ns(), 77u);
  record.vcpu.reset();
  record.set_outcome(vmm::FaultKind::kReclaimed, vmm::FaultResolution::kRestored);
  const auto restored = fault_to_proto(record);
  EXPECT_EQ(restored.vcpu(), kNoVcpu);
  EXPECT_EQ(restored.kind(), hvmm::v1::FAULT_KIND_RECLAIMED);
  EXPECT_EQ(restored.resolution(), hvmm::v1::FAULT_RESOLUTION_COPIED);
}

// A dump run keeps its range, output, attributes and state.
TEST(VmprocProtoConvert, MappedRange) {
  stage2::MappedRange run{
      IpaRange{Ipa(0x200000), 0x400000},
      HostOffset(0x1000),
      stage2::Attributes{stage2::Permissions::kReadOnly, stage2::MemoryType::kDeviceNGnRE,
                         stage2::Shareability::kInnerShareable, false},
      stage2::PageState{stage2::Backing::kBallooned, true, false},
      true,
      1};
  const auto mapping = mapping_to_proto(run);
  EXPECT_EQ(mapping.range().start(), 0x200000u);
  EXPECT_EQ(mapping.range().size(), 0x400000u);
  EXPECT_EQ(mapping.host_offset(), 0x1000u);
  EXPECT_EQ(mapping.permissions(), hvmm::v1::PERMISSIONS_READ_ONLY);
  EXPECT_EQ(mapping.memory_type(), hvmm::v1::MEMORY_TYPE_DEVICE_NGNRE);
  EXPECT_FALSE(mapping.executable());
  EXPECT_EQ(mapping.state().backing(), hvmm::v1::BACKING_BALLOONED);
  EXPECT_TRUE(mapping.state().write_tracked());
  EXPECT_FALSE(mapping.state().pinned());
  EXPECT_TRUE(mapping.young());
  EXPECT_EQ(mapping.largest_block_level(), 1u);
}

// Pages become bytes; the guest's stats keep Linux's names; no balloon is present = false.
TEST(VmprocProtoConvert, Balloon) {
  EXPECT_FALSE(balloon_to_proto(std::nullopt).present());
  vmm::BalloonStatistics stats;
  stats.target_pages = 10;
  stats.actual_pages = 4;
  stats.guest_stats[static_cast<size_t>(vmm::BalloonStat::kFreeMemory)] = 12345;
  const auto balloon = balloon_to_proto(stats);
  EXPECT_TRUE(balloon.present());
  EXPECT_EQ(balloon.target_bytes(), 10 * kPageSize);
  EXPECT_EQ(balloon.actual_bytes(), 4 * kPageSize);
  ASSERT_EQ(balloon.guest_stats().size(), 1u);
  EXPECT_EQ(balloon.guest_stats().at("free-memory"), 12345u);
  EXPECT_EQ(balloon.guest_stats_unix_ns(), 0u);
}

// Resolutions that share a proto value are summed per kind.
TEST(VmprocProtoConvert, FaultCountsSumSharedResolutions) {
  vmm::FaultCounts counts;
  const auto unbacked = static_cast<size_t>(vmm::FaultKind::kMmioUnbacked);
  counts.faults[unbacked][static_cast<size_t>(vmm::FaultResolution::kReadAllOnes)] = 2;
  counts.faults[unbacked][static_cast<size_t>(vmm::FaultResolution::kWriteDropped)] = 3;
  counts.faults[static_cast<size_t>(vmm::FaultKind::kMissing)]
               [static_cast<size_t>(vmm::FaultResolution::kZeroFill)] = 5;
  hvmm::v1::MemoryStats stats;
  add_fault_counts(counts, stats);
  ASSERT_EQ(stats.faults_size(), 2);
  EXPECT_EQ(stats.faults(0).kind(), hvmm::v1::FAULT_KIND_MMIO_UNBACKED);
  EXPECT_EQ(stats.faults(0).resolution(), hvmm::v1::FAULT_RESOLUTION_EMULATED);
  EXPECT_EQ(stats.faults(0).count(), 5u);
  EXPECT_EQ(stats.faults(1).kind(), hvmm::v1::FAULT_KIND_MISSING);
  EXPECT_EQ(stats.faults(1).count(), 5u);
}

}  // namespace
}  // namespace hvmm::daemon::vmproc
