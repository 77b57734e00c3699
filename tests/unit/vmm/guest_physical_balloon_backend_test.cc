// Tests of the Machine's balloon backend on a real GuestPhysical (memfd, map, notifiers; no
// KVM): what inflate, deflate and report do to the map's page states, the memfd's allocated
// blocks, the notifier stream and the backend's counters, and how a failed run is handled.
#include "hvmm/vmm/machine/guest_physical_balloon_backend.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hvmm::vmm {
namespace {

using stage2::Backing;
using stage2::Change;

constexpr uint64_t kRam = 8 << 20;
constexpr uint64_t kPages = kRam / kPageSize;
constexpr uint64_t kMiB = 1 << 20;

// Records the reason of every invalidation start.
class ReasonRecorder final : public stage2::IntervalOps {
 public:
  bool invalidate_range_start(const Change& change) override {
    reasons.push_back(change_reason_name(change.reason));
    return true;
  }
  void invalidate_range_end(const Change& /*change*/) override {}
  std::vector<std::string> reasons;
};

// A GuestPhysical of kRam with its first 4 MiB touched, and a backend over it.
struct BalloonBackendTest : ::testing::Test {
  void SetUp() override {
    auto created = GuestPhysical::create(kRam, "balloon-backend-test", 1);
    ASSERT_TRUE(created.ok()) << created.error().message;
    physical = std::move(*created);
    auto sub = physical->notifiers().subscribe(IpaRange{Ipa(0), kRam}, &recorder);
    ASSERT_TRUE(sub.ok());
    subscription = std::move(*sub);
    std::vector<uint8_t> data(4 * kMiB, 0x5a);
    ASSERT_TRUE(physical->write(Ipa(0), data).ok());
    backend = std::make_unique<GuestPhysicalBalloonBackend>(
        *physical, [this](const std::string& line) { log.push_back(line); });
  }
  uint64_t allocated() { return *physical->allocated_bytes(); }
  Backing backing_at(Ipa ipa) { return physical->map().translate(ipa)->state.backing; }

  ReasonRecorder recorder;
  std::unique_ptr<GuestPhysical> physical;
  stage2::IntervalSubscription subscription;
  std::unique_ptr<GuestPhysicalBalloonBackend> backend;
  std::vector<std::string> log;
};

// Inflating two runs (one touched, one half touched) balloons them in the map, punches them
// out of the memfd, and counts the pages and the touched bytes they held.
TEST_F(BalloonBackendTest, InflateBalloonsRunsAndReleasesTheirMemory) {
  ASSERT_EQ(allocated(), 4 * kMiB);
  const std::vector<IpaRange> runs{{Ipa(0), kMiB}, {Ipa(3 * kMiB), 2 * kMiB}};
  ASSERT_TRUE(backend->inflate(runs).ok());
  EXPECT_EQ(physical->page_counts()[Backing::kBallooned], 3 * kMiB / kPageSize);
  EXPECT_EQ(physical->page_counts()[Backing::kResident], kPages - 3 * kMiB / kPageSize);
  EXPECT_EQ(physical->page_counts(), physical->count_pages_by_walk());
  EXPECT_EQ(backing_at(Ipa(0)), Backing::kBallooned);
  EXPECT_EQ(backing_at(Ipa(4 * kMiB)), Backing::kBallooned);
  EXPECT_EQ(backing_at(Ipa(kMiB)), Backing::kResident);
  // [1M, 3M) stays touched; [0, 1M) and [3M, 4M) are gone; [4M, 5M) was never touched.
  EXPECT_EQ(allocated(), 2 * kMiB);
  auto extents = *physical->memory().allocated_extents();
  ASSERT_EQ(extents.size(), 1u);
  EXPECT_EQ(extents[0], (HostRange{HostOffset(kMiB), 2 * kMiB}));
  const BalloonBackendStats stats = backend->stats();
  EXPECT_EQ(stats.inflate_batches, 1u);
  EXPECT_EQ(stats.runs, 2u);
  EXPECT_EQ(stats.failed_runs, 0u);
  EXPECT_EQ(stats.ballooned_pages, 3 * kMiB / kPageSize);
  EXPECT_EQ(stats.inflated_allocated_bytes, 2 * kMiB);
  EXPECT_GT(stats.inflate_ns, 0u);
  EXPECT_EQ(recorder.reasons, (std::vector<std::string>{"balloon", "balloon"}));
  EXPECT_TRUE(log.empty());
}

// Deflating makes ballooned pages resident without filling them: they stay holes that read
// as zero, and the guest's next touch allocates them again.
TEST_F(BalloonBackendTest, DeflateMakesPagesResidentUnfilled) {
  const std::vector<IpaRange> runs{{Ipa(0), 2 * kMiB}};
  ASSERT_TRUE(backend->inflate(runs).ok());
  ASSERT_TRUE(backend->deflate(runs).ok());
  EXPECT_EQ(physical->page_counts()[Backing::kResident], kPages);
  EXPECT_EQ(backing_at(Ipa(0)), Backing::kResident);
  EXPECT_EQ(allocated(), 2 * kMiB);
  std::vector<uint8_t> page(kPageSize, 0xff);
  ASSERT_TRUE(physical->read(Ipa(kPageSize), page).ok());
  EXPECT_EQ(page, std::vector<uint8_t>(kPageSize, 0));
  const BalloonBackendStats stats = backend->stats();
  EXPECT_EQ(stats.deflate_batches, 1u);
  EXPECT_EQ(stats.deflated_pages, 2 * kMiB / kPageSize);
}

// A report marks the pages reported with the free-page-report reason and punches them.
TEST_F(BalloonBackendTest, ReportMarksPagesReported) {
  const std::vector<IpaRange> runs{{Ipa(2 * kMiB), 2 * kMiB}};
  ASSERT_TRUE(backend->report(runs).ok());
  EXPECT_EQ(physical->page_counts()[Backing::kReported], 2 * kMiB / kPageSize);
  EXPECT_EQ(backing_at(Ipa(2 * kMiB)), Backing::kReported);
  EXPECT_EQ(allocated(), 2 * kMiB);
  EXPECT_EQ(recorder.reasons, (std::vector<std::string>{"free-page-report"}));
  EXPECT_EQ(backend->stats().reported_pages, 2 * kMiB / kPageSize);
}

// A page reported again while the map still says reported was reused behind the map's back
// (a guest write through the primary mapping with no fault handler: the host kernel fills
// the hole itself); the second report punches it again.
TEST_F(BalloonBackendTest, ReportAgainReleasesPagesReusedBehindTheMap) {
  const std::vector<IpaRange> runs{{Ipa(4 * kMiB), 2 * kMiB}};
  ASSERT_TRUE(backend->report(runs).ok());
  ASSERT_EQ(allocated(), 4 * kMiB);
  physical->memory().guest_base()[4 * kMiB] = 1;
  physical->memory().guest_base()[5 * kMiB] = 1;
  ASSERT_EQ(allocated(), 4 * kMiB + 2 * kPageSize);
  ASSERT_TRUE(backend->report(runs).ok());
  EXPECT_EQ(allocated(), 4 * kMiB);
  EXPECT_EQ(physical->page_counts()[Backing::kReported], 2 * kMiB / kPageSize);
  EXPECT_EQ(physical->page_counts(), physical->count_pages_by_walk());
  const BalloonBackendStats stats = backend->stats();
  EXPECT_EQ(stats.rereported_pages, 2 * kMiB / kPageSize);
  EXPECT_EQ(stats.report_batches, 2u);
  EXPECT_EQ(stats.failed_runs, 0u);
}

// A run the map refuses (outside RAM) fails alone: the other run is still ballooned, the
// failure is counted, logged once and returned as an error naming the operation.
TEST_F(BalloonBackendTest, FailedRunIsCountedLoggedAndTheRestApplied) {
  const std::vector<IpaRange> runs{{Ipa(0), kMiB}, {Ipa(kRam), kMiB}};
  auto result = backend->inflate(runs);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("inflate: 1 of 2 runs failed"), std::string::npos)
      << result.error().message;
  EXPECT_EQ(physical->page_counts()[Backing::kBallooned], kMiB / kPageSize);
  const BalloonBackendStats stats = backend->stats();
  EXPECT_EQ(stats.failed_runs, 1u);
  EXPECT_EQ(stats.failed_batches, 1u);
  EXPECT_EQ(stats.ballooned_pages, kMiB / kPageSize);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("virtio-balloon: inflate: 1 of 2 runs failed"), std::string::npos)
      << log[0];
}

// Failures past the first few are counted but no longer logged.
TEST_F(BalloonBackendTest, FailureLogIsBounded) {
  const std::vector<IpaRange> runs{{Ipa(kRam), kMiB}};
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(backend->deflate(runs).ok());
  }
  EXPECT_EQ(backend->stats().failed_batches, 20u);
  EXPECT_EQ(log.size(), 8u);
  EXPECT_NE(log.back().find("further failures only counted"), std::string::npos);
}

// Recording keeps the inflated runs in order, for a replay.
TEST_F(BalloonBackendTest, RecordsInflatedRunsWhenAsked) {
  const std::vector<IpaRange> first{{Ipa(0), kMiB}};
  const std::vector<IpaRange> second{{Ipa(2 * kMiB), kMiB}};
  ASSERT_TRUE(backend->inflate(first).ok());
  backend->record_inflated_runs(true);
  ASSERT_TRUE(backend->inflate(second).ok());
  EXPECT_EQ(backend->inflated_runs(), second);
}

}  // namespace
}  // namespace hvmm::vmm
