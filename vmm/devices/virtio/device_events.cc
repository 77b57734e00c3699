// The device event thread: poll the ioeventfds, the timers and the stop eventfd.
#include "hvmm/vmm/devices/virtio/device_events.h"
#include "hvmm/vmm/host/service_thread.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hvmm::vmm::virtio {

// Make the stop eventfd (an invalid one only makes start() fail).
DeviceEvents::DeviceEvents() : stop_event_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

// Stop the thread before the sources' owners go away.
DeviceEvents::~DeviceEvents() {
  stop();
}

// Register a readable-fd callback.
void DeviceEvents::add_fd(int fd, std::function<void()> on_ready) {
  sources_.push_back(Source{fd, std::move(on_ready)});
}

// A periodic timerfd whose expiry count is read before `on_tick` runs.
Result<void> DeviceEvents::add_timer(std::chrono::milliseconds period,
                                     std::function<void()> on_tick) {
  UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!timer.valid() || period.count() <= 0) {
    return make_error(ErrorCode::kInternal, "timerfd for a {} ms period failed: {}", period.count(),
                      std::strerror(errno));
  }
  itimerspec spec{};
  spec.it_interval.tv_sec = period.count() / 1000;
  spec.it_interval.tv_nsec = (period.count() % 1000) * 1000000;
  spec.it_value = spec.it_interval;
  if (::timerfd_settime(timer.get(), 0, &spec, nullptr) < 0) {
    return make_error(ErrorCode::kInternal, "timerfd_settime failed: {}", std::strerror(errno));
  }
  const int fd = timer.get();
  timers_.push_back(std::move(timer));
  add_fd(fd, [fd, tick = std::move(on_tick)] {
    uint64_t expirations = 0;
    if (::read(fd, &expirations, sizeof(expirations)) == sizeof(expirations)) {
      tick();
    }
  });
  return Ok();
}

// Start polling.
Result<void> DeviceEvents::start() {
  if (!stop_event_.valid()) {
    return make_error(ErrorCode::kInternal, "device event thread: no stop eventfd");
  }
  thread_ = start_service_thread([this] { run(); });
  return Ok();
}

// Wake the thread through its stop eventfd and join it.
void DeviceEvents::stop() {
  if (!thread_.joinable()) {
    return;
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(stop_event_.get(), &one, sizeof(one));
  thread_.join();
}

// Poll every source (stop eventfd first) until stopped.
void DeviceEvents::run() {
  std::vector<pollfd> fds;
  fds.push_back({stop_event_.get(), POLLIN, 0});
  for (const Source& source : sources_) {
    fds.push_back({source.fd, POLLIN, 0});
  }
  while (true) {
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) {
      return;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      return;
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if ((fds[i].revents & POLLIN) != 0) {
        sources_[i - 1].on_ready();
      }
    }
  }
}

}  // namespace hvmm::vmm::virtio
