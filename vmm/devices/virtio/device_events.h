// DeviceEvents: the one thread that serves every virtio device's host-side events: the
// ioeventfds KVM signals on QueueNotify writes, and periodic timers (the balloon's stats
// interval). Sources are added before start(); stop() (or destruction) ends the thread.
#pragma once

#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "hvmm/base/result.h"
#include "hvmm/vmm/host/unique_fd.h"

namespace hvmm::vmm::virtio {

class DeviceEvents {
 public:
  DeviceEvents();
  ~DeviceEvents();
  DeviceEvents(const DeviceEvents&) = delete;
  DeviceEvents& operator=(const DeviceEvents&) = delete;

  // Call `on_ready` whenever `fd` is readable; the callback must consume what made it so.
  void add_fd(int fd, std::function<void()> on_ready);
  // Call `on_tick` every `period` (a timerfd).
  Result<void> add_timer(std::chrono::milliseconds period, std::function<void()> on_tick);
  // Start the thread (once, after every source was added).
  Result<void> start();
  // End the thread and wait for it; safe to call more than once.
  void stop();

 private:
  struct Source {
    int fd;
    std::function<void()> on_ready;
  };
  void run();

  UniqueFd stop_event_;
  std::vector<UniqueFd> timers_;
  std::vector<Source> sources_;
  std::thread thread_;
};

}  // namespace hvmm::vmm::virtio
