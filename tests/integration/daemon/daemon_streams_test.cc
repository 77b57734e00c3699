// The daemon's streams: WatchNotifier (fan-out with filters, a slow client dropped with a
// counted overflow while a fast one keeps receiving, clean-up of a client that leaves),
// WatchFaults (and the daemon's fault log), WatchBalloon and SetBalloonTarget.
#include <atomic>
#include <fstream>
#include <thread>

#include "daemon_client.h"

namespace hvmm::testing {
namespace {

class Streams : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(daemon_.start()) << daemon_.log();
    client_ = std::make_unique<DaemonClient>(daemon_.channel());
  }

  v1::ListSubscriptionsResponse subscriptions(const std::string& name) {
    v1::ListSubscriptionsRequest request;
    request.set_name(name);
    v1::ListSubscriptionsResponse response;
    grpc::Status status =
        client_->notifier->ListSubscriptions(client_->context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  size_t watch_clients(const std::string& name) {
    size_t count = 0;
    v1::ListSubscriptionsResponse listed = subscriptions(name);
    for (const auto& subscription : listed.subscriptions()) {
      count += subscription.owner() == "watch" ? 1 : 0;
    }
    return count;
  }

  bool wait_for_watch_clients(const std::string& name, size_t count) {
    for (int i = 0; i < 500; ++i) {
      if (watch_clients(name) == count) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  grpc::Status invalidate(const std::string& name, uint64_t start, uint64_t size) {
    v1::InvalidateRequest request;
    request.set_name(name);
    request.mutable_range()->set_start(start);
    request.mutable_range()->set_size(size);
    v1::InvalidateResponse response;
    return client_->notifier->Invalidate(client_->context().get(), request, &response);
  }

  DaemonHarness daemon_{fake_daemon_options()};
  std::unique_ptr<DaemonClient> client_;
};

// A client that stops reading is dropped with RESOURCE_EXHAUSTED naming its buffer and the
// overflow is counted; a fast client of the same VM keeps receiving through it and after.
TEST_F(Streams, SlowNotifierClientIsDroppedFastOneKeepsReceiving) {
  client_->run("busy", "fake.notifier_rate=20000");
  std::atomic<uint64_t> fast_events{0};
  std::atomic<bool> saw_marker{false};
  auto fast_context = DaemonClient::context(std::chrono::seconds(60));
  v1::WatchNotifierRequest fast_request;
  fast_request.set_name("busy");
  fast_request.set_buffer(65536);
  auto fast = client_->notifier->Watch(fast_context.get(), fast_request);
  std::thread fast_reader([&] {
    v1::NotifierEvent event;
    while (fast->Read(&event)) {
      ++fast_events;
      if (event.reason() == v1::CHANGE_REASON_SHOOTDOWN) {
        saw_marker = true;
      }
    }
  });
  v1::WatchNotifierRequest slow_request;
  slow_request.set_name("busy");
  slow_request.set_buffer(16);
  auto slow_context = DaemonClient::context(std::chrono::seconds(60));
  auto slow = client_->notifier->Watch(slow_context.get(), slow_request);
  // The slow client reads nothing while thousands of events go by.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  v1::ListSubscriptionsResponse during = subscriptions("busy");
  EXPECT_EQ(during.watch_clients_dropped(), 1u) << during.DebugString();
  uint64_t fast_at_drop = fast_events.load();
  EXPECT_GT(fast_at_drop, 1000u);
  v1::NotifierEvent event;
  uint64_t slow_events = 0;
  while (slow->Read(&event)) {
    ++slow_events;
  }
  grpc::Status dropped = slow->Finish();
  EXPECT_EQ(dropped.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(dropped.error_message().find("buffer"), std::string::npos) << dropped.error_message();
  EXPECT_LT(slow_events, 100000u);
  // The fast client goes on, and sees an invalidation made after the drop.
  ASSERT_TRUE(invalidate("busy", 0x100000, 0x2000).ok());
  for (int i = 0; i < 200 && !saw_marker; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(saw_marker.load());
  EXPECT_GT(fast_events.load(), fast_at_drop);
  v1::ListSubscriptionsResponse after = subscriptions("busy");
  size_t clients = 0;
  for (const auto& subscription : after.subscriptions()) {
    if (subscription.owner() == "watch") {
      ++clients;
      EXPECT_GT(subscription.events_sent(), 0u);
      EXPECT_EQ(subscription.overflows(), 0u);
    }
  }
  EXPECT_EQ(clients, 1u) << after.DebugString();
  fast_context->TryCancel();
  fast_reader.join();
  fast->Finish();
}

// Each client gets the events of its filter only; the VM process is asked for their union and
// is told to stop forwarding when the last client leaves.
TEST_F(Streams, FiltersAndCleanupOfClientsThatLeave) {
  client_->run("filtered");
  auto low_context = DaemonClient::context(std::chrono::seconds(30));
  v1::WatchNotifierRequest low_request;
  low_request.set_name("filtered");
  low_request.mutable_filter()->set_start(0);
  low_request.mutable_filter()->set_size(0x10000);
  auto low = client_->notifier->Watch(low_context.get(), low_request);
  auto high_context = DaemonClient::context(std::chrono::seconds(30));
  v1::WatchNotifierRequest high_request = low_request;
  high_request.mutable_filter()->set_start(0x200000);
  auto high = client_->notifier->Watch(high_context.get(), high_request);
  ASSERT_TRUE(wait_for_watch_clients("filtered", 2));
  ASSERT_TRUE(invalidate("filtered", 0x1000, 0x1000).ok());    // low only
  ASSERT_TRUE(invalidate("filtered", 0x200000, 0x1000).ok());  // high only
  ASSERT_TRUE(invalidate("filtered", 0x800000, 0x1000).ok());  // nobody
  v1::NotifierEvent event;
  for (auto phase : {v1::NOTIFIER_PHASE_START, v1::NOTIFIER_PHASE_END}) {
    ASSERT_TRUE(low->Read(&event));
    EXPECT_EQ(event.range().start(), 0x1000u);
    EXPECT_EQ(event.phase(), phase);
    EXPECT_EQ(event.reason(), v1::CHANGE_REASON_SHOOTDOWN);
    ASSERT_TRUE(high->Read(&event));
    EXPECT_EQ(event.range().start(), 0x200000u);
  }
  // A client that disconnects mid-stream is cleaned up; forwarding follows the union.
  low_context->TryCancel();
  low->Finish();
  ASSERT_TRUE(wait_for_watch_clients("filtered", 1));
  high_context->TryCancel();
  high->Finish();
  ASSERT_TRUE(wait_for_watch_clients("filtered", 0));
  auto lines = client_->console("filtered");
  EXPECT_TRUE(any_line_has(lines, "forwarding 2 notifier ranges")) << lines.size();
  EXPECT_TRUE(any_line_has(lines, "forwarding 1 notifier ranges"));
  EXPECT_TRUE(any_line_has(lines, "forwarding 0 notifier ranges"));
  // A watch of a VM that is not running names its state.
  v1::VmSpec spec;
  ASSERT_TRUE(client_->create("idle", spec, false).ok());
  v1::WatchNotifierRequest idle_request;
  idle_request.set_name("idle");
  auto idle_context = DaemonClient::context();
  auto idle = client_->notifier->Watch(idle_context.get(), idle_request);
  EXPECT_FALSE(idle->Read(&event));
  grpc::Status status = idle->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("CREATED"), std::string::npos);
}

// WatchFaults fans out the VM processes' fault records (all VMs, or one, or some kinds), and
// the daemon's fault log gets them as JSON lines.
TEST_F(Streams, FaultsReachWatchersAndTheFaultLog) {
  client_->run("prober");
  client_->run("quiet");
  auto all_context = DaemonClient::context();
  v1::WatchFaultsRequest all_request;
  auto all = client_->faults->Watch(all_context.get(), all_request);
  auto quiet_context = DaemonClient::context(std::chrono::seconds(3));
  v1::WatchFaultsRequest quiet_request;
  quiet_request.set_name("quiet");
  auto quiet = client_->faults->Watch(quiet_context.get(), quiet_request);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // both are registered
  v1::ProbeRequest probe;
  probe.set_name("prober");
  probe.set_ipa(0xfee00000);
  v1::ProbeResponse value;
  ASSERT_TRUE(client_->guest->Probe(client_->context().get(), probe, &value).ok());
  EXPECT_EQ(value.value(), 0xffffffffu);
  v1::Fault fault;
  ASSERT_TRUE(all->Read(&fault));
  EXPECT_EQ(fault.vm(), "prober");
  EXPECT_EQ(fault.ipa(), 0xfee00000u);
  EXPECT_EQ(fault.kind(), v1::FAULT_KIND_MMIO_UNBACKED);
  EXPECT_EQ(fault.vmid(), client_->get("prober").vmid());
  EXPECT_FALSE(quiet->Read(&fault)) << "a fault of another VM reached a one-VM watcher";
  quiet->Finish();
  all_context->TryCancel();
  all->Finish();
  std::string log;
  for (int i = 0; i < 100 && log.find("0xfee00000") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    log = slurp(daemon_.state_dir() + "/faults.jsonl");
  }
  EXPECT_NE(log.find(R"("vm":"prober")"), std::string::npos) << log;
  EXPECT_NE(log.find(R"("ipa":"0xfee00000","access":"read","size":4,"kind":"unbacked",)"
                     R"("resolution":"read-all-ones")"),
            std::string::npos)
      << log;
}

// WatchBalloon sets the target and streams the balloon's progress until it is reached;
// SetBalloonTarget returns the balloon's figures.
TEST_F(Streams, BalloonProgressUntilReached) {
  client_->run("balloon", "fake.balloon_step=4194304", uint64_t{128} << 20);
  v1::WatchBalloonRequest request;
  request.set_name("balloon");
  request.set_target_bytes(uint64_t{32} << 20);
  request.set_interval_ms(10);
  auto context = DaemonClient::context();
  auto reader = client_->memory->WatchBalloon(context.get(), request);
  std::vector<v1::BalloonProgress> updates;
  v1::BalloonProgress progress;
  while (reader->Read(&progress)) {
    updates.push_back(progress);
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_GE(updates.size(), 8u);  // 32 MiB in 4 MiB steps
  for (size_t i = 1; i < updates.size(); ++i) {
    EXPECT_GT(updates[i].actual_bytes(), updates[i - 1].actual_bytes());
    EXPECT_EQ(updates[i].target_bytes(), uint64_t{32} << 20);
  }
  EXPECT_TRUE(updates.back().reached());
  EXPECT_EQ(updates.back().actual_bytes(), uint64_t{32} << 20);
  // A target the balloon cannot reach in time: DEADLINE_EXCEEDED naming deadline_ms.
  request.set_target_bytes(0);
  request.set_deadline_ms(50);
  auto late_context = DaemonClient::context();
  auto late = client_->memory->WatchBalloon(late_context.get(), request);
  while (late->Read(&progress)) {
  }
  grpc::Status status = late->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_NE(status.error_message().find("deadline_ms"), std::string::npos);
  v1::SetBalloonTargetRequest set;
  set.set_name("balloon");
  set.set_target_bytes((uint64_t{16} << 20) + 123);
  v1::SetBalloonTargetResponse balloon;
  ASSERT_TRUE(client_->memory->SetBalloonTarget(client_->context().get(), set, &balloon).ok());
  EXPECT_EQ(balloon.balloon().target_bytes(), uint64_t{16} << 20);
}

}  // namespace
}  // namespace hvmm::testing
