// The control channel's host side: tagged requests out on queue 0, responses in on queue 1.
#include "hvmm/vmm/devices/control/control_channel.h"

#include <cstring>
#include <mutex>

namespace hvmm::vmm {
namespace {

// Abandoned tags remembered at most (older late responses then count as unknown).
constexpr size_t kMaxAbandoned = 1024;

}  // namespace

// Config space: le32 protocol version, read-only.
void ControlChannel::read_config(uint64_t offset, std::span<uint8_t> data) {
  const uint32_t version = control::kControlVersion;
  uint8_t config[4];
  std::memcpy(config, &version, 4);
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < 4 ? config[offset + i] : 0;
  }
}

// Nothing in the config space is writable.
Result<void> ControlChannel::write_config(uint64_t offset, std::span<const uint8_t> data) {
  return make_error(ErrorCode::kInvalidArgument,
                    "hvmm-control: {}-byte write to the read-only config space at {:#x}",
                    data.size(), offset);
}

// Queue the request, deliver what can be, wait for this tag's answer.
Result<control::ControlResponse> ControlChannel::call(
    control::ControlRequest request, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock guard(context_->lock());
  if (shut_down_) {
    return make_error(ErrorCode::kUnavailable, "hvmm-control: the VM is shutting down");
  }
  const uint64_t tag = next_tag_++;
  request.magic = control::kRequestMagic;
  request.version = control::kControlVersion;
  request.tag = tag;
  calls_[tag].request = request;
  undelivered_.push_back(tag);
  if (context_->live()) {
    auto delivered = deliver();
    if (!delivered) {
      context_->needs_reset(delivered.error().message);
    }
  }
  changed_.wait_until(guard, deadline, [&] {
    const Call& waiting = calls_[tag];
    return waiting.response || waiting.failure;
  });
  Call done = std::move(calls_[tag]);
  if (done.response) {
    calls_.erase(tag);
    return *done.response;
  }
  forget(tag);
  if (done.failure) {
    return make_error(ErrorCode::kUnavailable, "hvmm-control: op {} (tag {}): {}",
                      static_cast<unsigned>(request.op), tag, *done.failure);
  }
  return make_error(ErrorCode::kUnavailable,
                    "hvmm-control: op {} (tag {}) not answered by the deadline ({})",
                    static_cast<unsigned>(request.op), tag,
                    done.delivered ? "the guest took it" : "the guest never took it");
}

// Drop a call whose caller gave up; remember its tag if the guest has it.
void ControlChannel::forget(uint64_t tag) {
  auto it = calls_.find(tag);
  if (it == calls_.end()) {
    return;
  }
  if (it->second.delivered) {
    if (abandoned_.size() >= kMaxAbandoned) {
      abandoned_.erase(abandoned_.begin());
    }
    abandoned_.insert(tag);
  }
  std::erase(undelivered_, tag);
  calls_.erase(it);
}

// Write queued requests into posted buffers, one each, in order.
Result<void> ControlChannel::deliver() {
  bool returned = false;
  while (!undelivered_.empty() && !posted_.empty()) {
    const virtio::DescriptorChain chain = std::move(posted_.front());
    posted_.pop_front();
    Call& next = calls_[undelivered_.front()];
    undelivered_.pop_front();
    const auto* bytes = reinterpret_cast<const uint8_t*>(&next.request);
    HVMM_TRY(
        virtio::write_chain(context_->memory(), chain, {bytes, sizeof(control::ControlRequest)}));
    HVMM_TRY(context_->queue(control::kRequestQueue)
                 .push_used(context_->memory(), chain.head, sizeof(control::ControlRequest)));
    next.delivered = true;
    returned = true;
  }
  if (returned) {
    context_->signal_used();
  }
  return Ok();
}

// Queue 0 brings buffers to fill; queue 1 brings answers.
Result<void> ControlChannel::process_queue(unsigned index) {
  if (index == control::kRequestQueue) {
    HVMM_TRY(take_request_buffers());
    return deliver();
  }
  return take_responses();
}

// Keep every posted request buffer (write-only, large enough for a request).
Result<void> ControlChannel::take_request_buffers() {
  while (true) {
    auto chain = context_->queue(control::kRequestQueue).pop(context_->memory());
    HVMM_TRY(chain);
    if (!*chain) {
      return Ok();
    }
    if ((*chain)->readable_bytes() != 0 ||
        (*chain)->writable_bytes() < sizeof(control::ControlRequest)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "hvmm-control: request buffer {} has {} readable and {} writable bytes "
                        "(needs {} writable only)",
                        (*chain)->head, (*chain)->readable_bytes(), (*chain)->writable_bytes(),
                        sizeof(control::ControlRequest));
    }
    posted_.push_back(std::move(**chain));
  }
}

// Read every available response and return its buffer.
Result<void> ControlChannel::take_responses() {
  return virtio::return_each_chain(
      *context_, control::kResponseQueue,
      [&](const virtio::DescriptorChain& chain) { return take_response(chain); });
}

// Check the response and hand it to the caller waiting for its tag.
Result<void> ControlChannel::take_response(const virtio::DescriptorChain& chain) {
  control::ControlResponse response{};
  auto read = virtio::read_chain(context_->memory(), chain,
                                 {reinterpret_cast<uint8_t*>(&response), sizeof(response)});
  if (!read) {
    return make_error(ErrorCode::kInvalidArgument, "hvmm-control: response buffer {}: {}",
                      chain.head, read.error().message);
  }
  if (response.magic != control::kResponseMagic || response.version != control::kControlVersion) {
    return make_error(ErrorCode::kInvalidArgument,
                      "hvmm-control: response with magic {:#x} version {} (want {:#x} version {})",
                      response.magic, response.version, control::kResponseMagic,
                      control::kControlVersion);
  }
  if (abandoned_.erase(response.tag) != 0) {
    ++late_;
    return Ok();
  }
  auto it = calls_.find(response.tag);
  if (it == calls_.end() || !it->second.delivered || it->second.response) {
    return make_error(ErrorCode::kInvalidArgument,
                      "hvmm-control: response with tag {} that no delivered request has",
                      response.tag);
  }
  if (response.op != it->second.request.op) {
    return make_error(ErrorCode::kInvalidArgument,
                      "hvmm-control: response op {} to request op {} (tag {})",
                      static_cast<unsigned>(response.op),
                      static_cast<unsigned>(it->second.request.op), response.tag);
  }
  it->second.response = response;
  ++answered_;
  changed_.notify_all();
  return Ok();
}

// The driver lost what it had taken: fail those calls, keep the undelivered ones.
void ControlChannel::reset() {
  posted_.clear();
  abandoned_.clear();
  for (auto& [tag, waiting] : calls_) {
    if (waiting.delivered && !waiting.response) {
      waiting.failure = "the driver reset the device before answering";
    }
  }
  changed_.notify_all();
}

// Fail everyone; the VM is ending.
void ControlChannel::shut_down() {
  std::lock_guard guard(context_->lock());
  shut_down_ = true;
  for (auto& [tag, waiting] : calls_) {
    if (!waiting.response) {
      waiting.failure = "the VM is shutting down";
    }
  }
  changed_.notify_all();
}

uint64_t ControlChannel::answered() const {
  std::lock_guard guard(context_->lock());
  return answered_;
}

uint64_t ControlChannel::late_responses() const {
  std::lock_guard guard(context_->lock());
  return late_;
}

}  // namespace hvmm::vmm
