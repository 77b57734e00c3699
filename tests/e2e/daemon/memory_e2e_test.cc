// End-to-end: a guest-kernel VM's memory through the daemon. The guest touches memory and
// frees it, a balloon target is met and the VM process's RSS drops; a stage-2 dump (every
// page of it) shows the ballooned ranges and no longer does after a deflate; a notifier watch
// sees the balloon's invalidations, and a filtered one only what overlaps its filter.
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "daemon_test.h"
#include "guest_vms.h"
#include "stream_reader.h"

namespace hvmm::e2e {
namespace {

using std::chrono::seconds;

constexpr uint64_t kVmMemory = 256 * kMiB;

class Memory : public DaemonTest {
 protected:
  // Set the balloon target of `name` and wait until the guest met it.
  Reply<v1::SetBalloonTargetResponse> set_balloon(const std::string& name, uint64_t target) {
    v1::SetBalloonTargetRequest request;
    request.set_name(name);
    request.set_target_bytes(target);
    request.set_wait_ms(150000);
    return call(*api().memory, &v1::MemoryService::Stub::SetBalloonTarget, request, seconds(160));
  }
};

// The guest writes 128 MiB (a held workload), exits the workload, and the balloon is set to
// 128 MiB with wait: the call returns with the target met, and the VM process's RSS is at
// least 64 MiB below what it was with the workload's pages in it.
TEST_F(Memory, BalloonTargetIsMetAndTheVmProcessRssDrops) {
  auto vm = start_guest_vm(api(), "ballooned", guest_spec(kVmMemory));
  ASSERT_TRUE(vm.ok()) << vm.error().message;
  v1::StartWorkloadRequest workload;
  workload.set_name("ballooned");
  workload.set_kind(v1::WORKLOAD_KIND_TOUCH_SEQUENTIAL);
  workload.set_bytes(128 * kMiB);
  workload.set_seed(3);
  workload.set_hold(true);
  auto held = call(*api().guest, &v1::GuestService::Stub::StartWorkload, workload, seconds(150));
  ASSERT_TRUE(held.ok()) << describe(held.status);
  ASSERT_NE(held.response.workload(), 0u);
  auto touched = memory_stats(api(), "ballooned");
  ASSERT_TRUE(touched.ok()) << touched.error().message;
  EXPECT_GE(touched->host().rss_bytes(), 128 * kMiB) << "the workload's pages are resident";

  v1::WorkloadRequest exit;
  exit.set_name("ballooned");
  exit.set_workload(held.response.workload());
  auto exited = call(*api().guest, &v1::GuestService::Stub::ExitWorkload, exit, seconds(60));
  ASSERT_TRUE(exited.ok()) << describe(exited.status);

  auto reached = set_balloon("ballooned", 128 * kMiB);
  ASSERT_TRUE(reached.ok()) << describe(reached.status);
  EXPECT_TRUE(reached.response.balloon().present());
  EXPECT_EQ(reached.response.balloon().target_bytes(), 128 * kMiB);
  EXPECT_GE(reached.response.balloon().actual_bytes(), 128 * kMiB);

  auto after = memory_stats(api(), "ballooned");
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_EQ(after->balloon().target_bytes(), 128 * kMiB);
  EXPECT_GE(after->balloon().actual_bytes(), 128 * kMiB);
  EXPECT_GE(after->pages().ballooned(), 128 * kMiB / kPage);
  EXPECT_LE(after->host().rss_bytes() + 64 * kMiB, touched->host().rss_bytes())
      << "RSS " << touched->host().rss_bytes() << " with the workload, "
      << after->host().rss_bytes() << " after the balloon";
  EXPECT_LE(after->host().rss_shmem_bytes() + 64 * kMiB, touched->host().rss_shmem_bytes());

  // List and Get carry the same figures.
  v1::GetVmRequest get;
  get.set_name("ballooned");
  auto got = call(*api().vm, &v1::VmService::Stub::Get, get);
  ASSERT_TRUE(got.ok()) << describe(got.status);
  EXPECT_EQ(got.response.vm().memory().balloon_target_bytes(), 128 * kMiB);
  EXPECT_GE(got.response.vm().memory().balloon_actual_bytes(), 128 * kMiB);
}

// A stage-2 dump, read in pages of 2 mappings, covers guest RAM exactly once in IPA order;
// its ballooned ranges add up to the balloon's pages; after a deflate to 0 none is left.
TEST_F(Memory, DumpStage2ShowsTheBalloonedRanges) {
  auto vm = start_guest_vm(api(), "dumped", guest_spec(kVmMemory));
  ASSERT_TRUE(vm.ok()) << vm.error().message;
  auto inflated = set_balloon("dumped", 64 * kMiB);
  ASSERT_TRUE(inflated.ok()) << describe(inflated.status);
  auto stats = memory_stats(api(), "dumped");
  ASSERT_TRUE(stats.ok()) << stats.error().message;

  int pages = 0;
  auto mappings = dump_stage2_all(api(), "dumped", 2, &pages);
  ASSERT_TRUE(mappings.ok()) << mappings.error().message;
  // The balloon's pages coalesce into few runs: pages of 2 make the dump take several pages.
  ASSERT_GE(mappings->size(), 2u) << "a ballooned VM has resident and ballooned runs";
  EXPECT_EQ(static_cast<size_t>(pages), (mappings->size() + 1) / 2);
  uint64_t total = 0;
  uint64_t next = 0;
  for (const v1::Mapping& mapping : *mappings) {
    EXPECT_GE(mapping.range().start(), next) << "mappings out of order or overlapping";
    EXPECT_EQ(mapping.range().start() % kPage, 0u);
    EXPECT_EQ(mapping.range().size() % kPage, 0u);
    EXPECT_GT(mapping.range().size(), 0u);
    next = mapping.range().start() + mapping.range().size();
    total += mapping.range().size();
  }
  EXPECT_EQ(total, kVmMemory) << "the dump covers guest RAM";
  const uint64_t ballooned = bytes_with_backing(*mappings, v1::BACKING_BALLOONED);
  EXPECT_EQ(ballooned, stats->pages().ballooned() * kPage);
  EXPECT_GE(ballooned, 64 * kMiB);

  auto deflated = set_balloon("dumped", 0);
  ASSERT_TRUE(deflated.ok()) << describe(deflated.status);
  auto after = dump_stage2_all(api(), "dumped", 1000);
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_EQ(bytes_with_backing(*after, v1::BACKING_BALLOONED), 0u);
}

// True when `event` overlaps [start, start + size).
bool overlaps(const v1::NotifierEvent& event, uint64_t start, uint64_t size) {
  return event.range().start() < start + size &&
         start < event.range().start() + event.range().size();
}

// WatchNotifier sees the balloon's inflation as BALLOON invalidations, both phases of one
// sequence number, page-aligned ranges inside RAM; ListSubscriptions counts what the watch
// was sent; a watch filtered to one RAM page gets only events that overlap it.
TEST_F(Memory, WatchNotifierSeesTheBalloonsInvalidations) {
  auto vm = start_guest_vm(api(), "watched", guest_spec(kVmMemory));
  ASSERT_TRUE(vm.ok()) << vm.error().message;
  auto open_watch = [this](uint64_t start, uint64_t size) {
    return [this, start, size](grpc::ClientContext* context) {
      v1::WatchNotifierRequest request;
      request.set_name("watched");
      request.mutable_filter()->set_start(start);
      request.mutable_filter()->set_size(size);
      return api().notifier->Watch(context, request);
    };
  };
  StreamReader<v1::NotifierEvent> all(open_watch(0, 0));
  constexpr uint64_t kFilterStart = 16 * kMiB;
  StreamReader<v1::NotifierEvent> filtered(open_watch(kFilterStart, kPage));
  // Both watches are subscribed before the balloon moves (the call starts asynchronously).
  v1::ListSubscriptionsRequest list;
  list.set_name("watched");
  const auto deadline = std::chrono::steady_clock::now() + seconds(60);
  int watches = 0;
  while (watches < 2 && std::chrono::steady_clock::now() < deadline) {
    auto subscriptions = call(*api().notifier, &v1::NotifierService::Stub::ListSubscriptions, list);
    ASSERT_TRUE(subscriptions.ok()) << describe(subscriptions.status);
    watches = 0;
    for (const v1::Subscription& subscription : subscriptions.response.subscriptions()) {
      watches += subscription.owner() == "watch" ? 1 : 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // The daemon may forward the union of its watchers through one subscription.
  ASSERT_GE(watches, 1) << "no notifier subscription of owner \"watch\" appeared";

  v1::SetBalloonTargetRequest balloon;
  balloon.set_name("watched");
  balloon.set_target_bytes(32 * kMiB);
  balloon.set_wait_ms(150000);
  auto reached =
      call(*api().memory, &v1::MemoryService::Stub::SetBalloonTarget, balloon, seconds(160));
  ASSERT_TRUE(reached.ok()) << describe(reached.status);

  auto start = all.wait_for(
      [](const v1::NotifierEvent& event) {
        return event.reason() == v1::CHANGE_REASON_BALLOON &&
               event.phase() == v1::NOTIFIER_PHASE_START;
      },
      seconds(60));
  ASSERT_TRUE(start.has_value()) << "no BALLOON invalidation seen; " << all.messages().size()
                                 << " events, stream ended: " << all.ended().has_value();
  EXPECT_EQ(start->range().start() % kPage, 0u);
  EXPECT_EQ(start->range().size() % kPage, 0u);
  EXPECT_GT(start->range().size(), 0u);
  EXPECT_LE(start->range().start() + start->range().size(), kVmMemory);
  const uint64_t sequence = start->sequence();
  auto end = all.wait_for(
      [sequence](const v1::NotifierEvent& event) {
        return event.sequence() == sequence && event.phase() == v1::NOTIFIER_PHASE_END;
      },
      seconds(60));
  ASSERT_TRUE(end.has_value()) << "invalidate_range_end of sequence " << sequence << " missing";
  EXPECT_EQ(end->reason(), v1::CHANGE_REASON_BALLOON);
  EXPECT_EQ(end->range().start(), start->range().start());
  EXPECT_EQ(end->range().size(), start->range().size());
  // The last invalidations may still be on their way when the target is reported met.
  uint64_t balloon_bytes = 0;
  for (int i = 0; i < 300 && balloon_bytes < 32 * kMiB; ++i) {
    balloon_bytes = 0;
    for (const v1::NotifierEvent& event : all.messages()) {
      if (event.reason() == v1::CHANGE_REASON_BALLOON &&
          event.phase() == v1::NOTIFIER_PHASE_START) {
        balloon_bytes += event.range().size();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GE(balloon_bytes, 32 * kMiB) << "the invalidations cover what the balloon took";

  for (const v1::NotifierEvent& event : filtered.messages()) {
    EXPECT_TRUE(overlaps(event, kFilterStart, kPage))
        << "filtered watch got [" << event.range().start() << ", +" << event.range().size() << ")";
  }
  EXPECT_LT(filtered.messages().size(), all.messages().size());
  EXPECT_FALSE(all.ended().has_value()) << "the watch ended: " << describe(*all.ended());

  auto subscriptions = call(*api().notifier, &v1::NotifierService::Stub::ListSubscriptions, list);
  ASSERT_TRUE(subscriptions.ok()) << describe(subscriptions.status);
  uint64_t sent = 0;
  for (const v1::Subscription& subscription : subscriptions.response.subscriptions()) {
    if (subscription.owner() == "watch") {
      sent += subscription.events_sent();
    }
  }
  EXPECT_GT(sent, 0u);
  EXPECT_GT(subscriptions.response.invalidations(), 0u);
}

}  // namespace
}  // namespace hvmm::e2e
