// ControlChannel: the host side of hvmm's control device (hvmm/base/control_protocol.h;
// README.md in this folder documents it for driver writers).
//
// call() may be used from any thread: it gives the request a fresh tag, queues it, and
// waits until a response with that tag arrives or the deadline passes. Requests are written,
// in order, into the device-writable buffers the driver keeps posted on queue 0; responses
// come back on queue 1. A response the host cannot accept (too short, bad magic or version,
// a tag no caller waits for, an op that is not the request's) puts the device in
// NEEDS_RESET like any malformed queue; a response for a request whose caller gave up is
// dropped. A driver reset fails the calls it had taken and keeps the ones not yet delivered.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "hvmm/base/control_protocol.h"
#include "hvmm/vmm/devices/virtio/virtio_device.h"

namespace hvmm::vmm {

class ControlChannel final : public virtio::VirtioDevice {
 public:
  ControlChannel() = default;

  // Send `request` (its magic, version and tag are set here) and wait for the answer.
  Result<control::ControlResponse> call(control::ControlRequest request,
                                        std::chrono::steady_clock::time_point deadline);
  // Fail every waiting call (the VM is going away); later calls fail at once. The owner
  // calls it before the transport goes away.
  void shut_down();
  // Requests answered, and responses dropped because their caller had given up.
  uint64_t answered() const;
  uint64_t late_responses() const;

  const char* name() const override { return "hvmm-control"; }
  uint32_t device_id() const override { return control::kControlDeviceId; }
  uint64_t offered_features() const override { return 0; }  // VERSION_1 comes with the transport
  unsigned queue_count(uint64_t /*features*/) const override { return 2; }
  void attach(virtio::VirtioContext& context) override { context_ = &context; }
  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  Result<void> write_config(uint64_t offset, std::span<const uint8_t> data) override;
  void activate(uint64_t /*features*/) override {}
  Result<void> process_queue(unsigned index) override;
  void reset() override;

 private:
  // A caller's request from queueing to its answer.
  struct Call {
    control::ControlRequest request;
    bool delivered = false;
    std::optional<control::ControlResponse> response;
    std::optional<std::string> failure;
  };
  Result<void> take_request_buffers();
  Result<void> take_responses();
  Result<void> take_response(const virtio::DescriptorChain& chain);
  Result<void> deliver();
  void forget(uint64_t tag);

  virtio::VirtioContext* context_ = nullptr;
  uint64_t next_tag_ = 1;
  std::map<uint64_t, Call> calls_;              // by tag: every call still waiting
  std::deque<uint64_t> undelivered_;            // tags in request order
  std::deque<virtio::DescriptorChain> posted_;  // writable buffers the driver posted
  std::set<uint64_t> abandoned_;                // delivered, then the caller gave up
  bool shut_down_ = false;
  uint64_t answered_ = 0;
  uint64_t late_ = 0;
  std::condition_variable changed_;
};

}  // namespace hvmm::vmm
