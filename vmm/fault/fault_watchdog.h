// FaultWatchdog: a stuck or dead fault handler must not hang hvmm.
//
// A vCPU whose fault is never resolved sleeps in the kernel forever, and so would the VM. The
// watchdog is a thread of its own (it must not depend on a loop that a stuck fault could
// block) that samples the handler's health every `period`:
//   - stuck: one fault has been in resolution for longer than `timeout`;
//   - dead: messages have been waiting for longer than `timeout` while the handler's
//     heartbeat did not move (its thread died or never got back to its poll).
// Either way it calls `stop` once with kExitFaultHandlerStuck (125) and a reason naming the
// IPA and how long, and stops watching.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "hvmm/vmm/fault/fault_handler.h"

namespace hvmm::vmm {

struct FaultWatchdogConfig {
  std::chrono::milliseconds timeout{5000};
  std::chrono::milliseconds period{0};  // 0: timeout / 4
};

class FaultWatchdog {
 public:
  using HealthSource = std::function<FaultHandlerHealth()>;

  // Start watching `health` (FaultHandler::health, or a fake in tests).
  FaultWatchdog(HealthSource health, FaultStopCallback stop, FaultWatchdogConfig config = {});
  // Stop the thread and join it.
  ~FaultWatchdog();
  FaultWatchdog(const FaultWatchdog&) = delete;
  FaultWatchdog& operator=(const FaultWatchdog&) = delete;

  // Whether the watchdog has fired, and the reason it gave.
  bool fired() const;
  std::string reason() const;

 private:
  void run();
  // The reason to fire after sampling `health` at `now`, or "" when all is well.
  std::string check(const FaultHandlerHealth& health, std::chrono::steady_clock::time_point now);

  HealthSource health_;
  FaultStopCallback stop_;
  FaultWatchdogConfig config_;
  mutable std::mutex lock_;
  std::condition_variable wake_;
  bool quit_ = false;
  bool fired_ = false;
  std::string reason_;
  // Dead-handler tracking: when messages were first seen pending at this heartbeat.
  uint64_t pending_heartbeat_ = 0;
  std::chrono::steady_clock::time_point pending_since_{};
  std::thread thread_;  // last: started once the rest is initialised
};

}  // namespace hvmm::vmm
