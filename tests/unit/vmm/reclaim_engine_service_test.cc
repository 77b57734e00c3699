// Tests of the reclaim engine's service thread: epochs every period, on time, a prompt stop,
// and a data-loss epoch that stops the thread and reports it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "reclaim_test_support.h"

namespace hvmm::vmm {
namespace {

using namespace std::chrono_literals;
using testing::EngineRig;
using testing::test_policy;
using Clock = std::chrono::steady_clock;

// Wait up to `limit` for `done`.
template <typename Done>
bool wait_for(Done done, std::chrono::milliseconds limit = 5000ms) {
  const auto until = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > until)
      return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Ten epochs of 20 ms: the first no earlier than one period after start(), and on average one
// period apart (not early; late only by what a loaded machine adds).
TEST(ReclaimEngineServiceTest, EpochsRunEveryPeriod) {
  EngineRig rig;
  ReclaimPolicy policy = test_policy(1000);
  policy.period = 20ms;
  rig.make_engine(policy);
  std::mutex lock;
  std::vector<Clock::time_point> harvests;
  rig.dirty.on_harvest = [&] {
    std::lock_guard guard(lock);
    harvests.push_back(Clock::now());
  };
  const Clock::time_point started = Clock::now();
  ASSERT_TRUE(rig.engine->start().ok());
  ASSERT_TRUE(wait_for([&] { return rig.engine->stats().epochs >= 10; }));
  rig.engine->stop();
  std::lock_guard guard(lock);
  ASSERT_GE(harvests.size(), 10u);
  EXPECT_GE(harvests.front() - started, 19ms);
  const auto mean = (harvests.back() - harvests.front()) / (harvests.size() - 1);
  EXPECT_GE(mean, 19ms);
  EXPECT_LE(mean, 60ms);
  const uint64_t epochs = rig.engine->stats().epochs;
  std::this_thread::sleep_for(60ms);
  EXPECT_EQ(rig.engine->stats().epochs, epochs) << "no epoch after stop()";
}

// stop() does not wait for the period: with 10 s epochs it returns at once, and no epoch ran.
TEST(ReclaimEngineServiceTest, StopIsPrompt) {
  EngineRig rig;
  ReclaimPolicy policy = test_policy(1);
  policy.period = 10s;
  rig.make_engine(policy);
  ASSERT_TRUE(rig.engine->start().ok());
  std::this_thread::sleep_for(20ms);
  const Clock::time_point asked = Clock::now();
  rig.engine->stop();
  EXPECT_LT(Clock::now() - asked, 500ms);
  EXPECT_EQ(rig.engine->stats().epochs, 0u);
}

// start() twice is refused; stop() is idempotent; the engine starts again after a stop.
TEST(ReclaimEngineServiceTest, StartStopLifecycle) {
  EngineRig rig;
  ReclaimPolicy policy = test_policy(1000);
  policy.period = 5ms;
  rig.make_engine(policy);
  ASSERT_TRUE(rig.engine->start().ok());
  EXPECT_EQ(rig.engine->start().error().code, ErrorCode::kFailedPrecondition);
  rig.engine->stop();
  rig.engine->stop();
  const uint64_t epochs = rig.engine->stats().epochs;
  ASSERT_TRUE(rig.engine->start().ok());
  EXPECT_TRUE(wait_for([&] { return rig.engine->stats().epochs > epochs; }));
}

// An epoch that reports data loss ends the service thread and calls on_fatal with the error.
TEST(ReclaimEngineServiceTest, DataLossStopsTheThread) {
  EngineRig rig;
  ReclaimPolicy policy = test_policy(1);
  policy.period = 5ms;
  std::promise<Error> fatal;
  rig.make_engine(policy, true, [&](const Error& error) { fatal.set_value(error); });
  rig.touch(0, 1);
  rig.reclaimer->fail_next = make_error(ErrorCode::kDataLoss, "entry of page 0 corrupted");
  ASSERT_TRUE(rig.engine->start().ok());
  auto reported = fatal.get_future();
  ASSERT_EQ(reported.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(reported.get().code, ErrorCode::kDataLoss);
  const uint64_t epochs = rig.engine->stats().epochs;
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(rig.engine->stats().epochs, epochs) << "epochs went on after data loss";
  rig.engine->stop();
}

}  // namespace
}  // namespace hvmm::vmm
