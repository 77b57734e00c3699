// Tests of the fault watchdog: a handler stuck in its resolver (real userfaultfd) and a dead
// one (a fake health source) each stop the VM with 125 within the timeout; a healthy one not.
#include "hvmm/vmm/fault/fault_watchdog.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <thread>

#include "fault_test_support.h"
#include "hvmm/vmm/machine/exit_status.h"

namespace hvmm::vmm {
namespace {

using namespace std::chrono_literals;
using testing::FakeResolver;
using testing::kRamBase;
using testing::TestMemory;

// What the stop callback received.
struct StopRecord {
  std::mutex lock;
  std::condition_variable called;
  int status = -1;
  std::string reason;
  std::chrono::steady_clock::time_point when;

  FaultStopCallback callback() {
    return [this](int code, const std::string& why) {
      std::lock_guard guard(lock);
      status = code;
      reason = why;
      when = std::chrono::steady_clock::now();
      called.notify_all();
    };
  }
  bool wait(std::chrono::milliseconds limit) {
    std::unique_lock guard(lock);
    return called.wait_for(guard, limit, [this] { return status != -1; });
  }
};

// A resolver that blocks (until released) on its first fault names that fault's IPA, and the
// watchdog fires within its timeout (plus one period of slack).
TEST(FaultWatchdog, FiresOnAStuckResolverAndNamesTheIpa) {
  if (auto why = testing::userfaultfd_unavailable(); !why.empty()) {
    GTEST_SKIP() << "skip: " << why;
  }
  TestMemory memory(1 << 20);
  FakeResolver resolver(memory.size / kPageSize);
  std::mutex gate;
  std::condition_variable released;
  bool release = false;
  resolver.on_classify = [&](Ipa) {
    std::unique_lock guard(gate);
    released.wait(guard, [&] { return release; });
  };
  FaultHandlerConfig config;
  config.regions = {memory.region()};
  auto handler = FaultHandler::create(resolver, std::move(config));
  ASSERT_TRUE(handler.ok()) << handler.error().message;
  StopRecord stopped;
  const auto timeout = 200ms;
  const auto start = std::chrono::steady_clock::now();
  {
    FaultWatchdog watchdog([&] { return (*handler)->health(); }, stopped.callback(),
                           FaultWatchdogConfig{timeout, 20ms});
    std::thread toucher([&] { memory.primary.data()[5 * kPageSize] = 1; });
    ASSERT_TRUE(stopped.wait(5s)) << "the watchdog never fired";
    EXPECT_EQ(stopped.status, kExitFaultHandlerStuck);
    EXPECT_NE(stopped.reason.find(fmt::format("{:#x}", (kRamBase + 5 * kPageSize).value())),
              std::string::npos)
        << stopped.reason;
    EXPECT_GE(stopped.when - start, timeout);
    EXPECT_LT(stopped.when - start, timeout + 500ms);
    EXPECT_TRUE(watchdog.fired());
    {
      std::lock_guard guard(gate);
      release = true;
    }
    released.notify_all();
    toucher.join();
  }
  EXPECT_TRUE((*handler)->stop().ok());
}

// Messages pending at a heartbeat that never moves (a dead handler thread) fire the watchdog.
TEST(FaultWatchdog, FiresOnADeadHandler) {
  StopRecord stopped;
  FaultHandlerHealth dead;
  dead.pending = true;
  dead.heartbeat = 42;
  FaultWatchdog watchdog([&] { return dead; }, stopped.callback(),
                         FaultWatchdogConfig{100ms, 10ms});
  ASSERT_TRUE(stopped.wait(3s));
  EXPECT_EQ(stopped.status, kExitFaultHandlerStuck);
  EXPECT_NE(stopped.reason.find("not responding"), std::string::npos) << stopped.reason;
}

// A handler whose heartbeat moves while messages are pending (busy, not dead), or that is
// idle, is left alone.
TEST(FaultWatchdog, LeavesAHealthyHandlerAlone) {
  StopRecord stopped;
  std::atomic<uint64_t> beat{0};
  FaultWatchdog watchdog(
      [&] {
        FaultHandlerHealth busy;
        busy.pending = true;
        busy.heartbeat = beat.fetch_add(1);
        return busy;
      },
      stopped.callback(), FaultWatchdogConfig{50ms, 5ms});
  EXPECT_FALSE(stopped.wait(300ms)) << stopped.reason;
  EXPECT_FALSE(watchdog.fired());
}

}  // namespace
}  // namespace hvmm::vmm
