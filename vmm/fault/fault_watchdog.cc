// FaultWatchdog: sample the handler's health, fire once when it is stuck or dead.
#include "hvmm/vmm/fault/fault_watchdog.h"

#include "hvmm/vmm/host/service_thread.h"
#include "hvmm/vmm/machine/exit_status.h"

namespace hvmm::vmm {
namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds of `duration`, for messages.
int64_t to_ms(Clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(duration).count();
}

}  // namespace

// The period defaults to a quarter of the timeout (at least 1 ms).
FaultWatchdog::FaultWatchdog(HealthSource health, FaultStopCallback stop,
                             FaultWatchdogConfig config)
    : health_(std::move(health)), stop_(std::move(stop)), config_(config) {
  if (config_.period.count() <= 0) {
    config_.period = std::max(config_.timeout / 4, std::chrono::milliseconds(1));
  }
  thread_ = start_service_thread([this] { run(); });
}

// Wake the thread and join it.
FaultWatchdog::~FaultWatchdog() {
  {
    std::lock_guard guard(lock_);
    quit_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

// Sample every period until told to quit or fired; fire outside the lock.
void FaultWatchdog::run() {
  std::unique_lock guard(lock_);
  while (!quit_) {
    wake_.wait_for(guard, config_.period, [this] { return quit_; });
    if (quit_) {
      break;
    }
    guard.unlock();
    const FaultHandlerHealth health = health_();
    std::string why = check(health, Clock::now());
    guard.lock();
    if (!why.empty()) {
      fired_ = true;
      reason_ = why;
      guard.unlock();
      if (stop_) {
        stop_(kExitFaultHandlerStuck, why);
      }
      return;
    }
  }
}

// Stuck: one resolution older than the timeout. Dead: messages pending for longer than the
// timeout at an unchanged heartbeat.
std::string FaultWatchdog::check(const FaultHandlerHealth& health, Clock::time_point now) {
  if (health.resolving && now - health.since > config_.timeout) {
    return fmt::format(
        "fault handler stuck: the fault at IPA {:#x} has been resolving for {} ms "
        "(timeout {} ms)",
        health.resolving->value(), to_ms(now - health.since), config_.timeout.count());
  }
  if (!health.pending || health.heartbeat != pending_heartbeat_ ||
      pending_since_ == Clock::time_point{}) {
    pending_heartbeat_ = health.heartbeat;
    pending_since_ = health.pending ? now : Clock::time_point{};
    return "";
  }
  if (now - pending_since_ > config_.timeout) {
    return fmt::format(
        "fault handler not responding: faults have waited {} ms unread "
        "(timeout {} ms)",
        to_ms(now - pending_since_), config_.timeout.count());
  }
  return "";
}

// Whether stop was called.
bool FaultWatchdog::fired() const {
  std::lock_guard guard(lock_);
  return fired_;
}

// Why it fired ("" before).
std::string FaultWatchdog::reason() const {
  std::lock_guard guard(lock_);
  return reason_;
}

}  // namespace hvmm::vmm
