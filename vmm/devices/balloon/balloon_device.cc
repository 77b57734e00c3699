// virtio-balloon: config, inflate/deflate, stats and free page reporting queues.
#include "hvmm/vmm/devices/balloon/balloon_device.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>

#include "hvmm/vmm/devices/balloon/pfn_runs.h"

namespace hvmm::vmm {
namespace {

using virtio::DescriptorChain;
using virtio::feature;

// Config space layout (le32 each).
constexpr uint64_t kConfigNumPages = 0;
constexpr uint64_t kConfigActual = 4;
constexpr uint64_t kConfigSize = 16;  // + free_page_hint_cmd_id, poison_val (both 0)

// One stats record as the driver packs it.
constexpr size_t kStatRecordBytes = 10;  // le16 tag, le64 value
// The most stats bytes taken from one buffer (far more than the 16 tags need).
constexpr uint64_t kMaxStatsBytes = 4096;

}  // namespace

// Inflate, deflate, then stats and reporting when negotiated.
BalloonQueues balloon_queues(uint64_t features) {
  BalloonQueues queues;
  if ((features & feature(kBalloonFeatureStatsVq)) != 0) {
    queues.stats = queues.count++;
  }
  if ((features & feature(kBalloonFeatureReporting)) != 0) {
    queues.reporting = queues.count++;
  }
  return queues;
}

// Start with the configured target.
BalloonDevice::BalloonDevice(BalloonBackend& backend, std::vector<IpaRange> ram,
                             BalloonOptions options)
    : backend_(backend),
      ram_(std::move(ram)),
      options_(options),
      target_pages_(static_cast<uint32_t>(std::min<uint64_t>(
          options.initial_target_pages, std::numeric_limits<uint32_t>::max()))) {}

// STATS_VQ and DEFLATE_ON_OOM always, REPORTING when configured (see the header for why).
uint64_t BalloonDevice::offered_features() const {
  uint64_t features = feature(kBalloonFeatureStatsVq) | feature(kBalloonFeatureDeflateOnOom);
  if (options_.free_page_reporting) {
    features |= feature(kBalloonFeatureReporting);
  }
  return features;
}

// Compact numbering.
unsigned BalloonDevice::queue_count(uint64_t features) const {
  return balloon_queues(features & offered_features()).count;
}

// num_pages and actual, then zeros.
void BalloonDevice::read_config(uint64_t offset, std::span<uint8_t> data) {
  uint8_t config[kConfigSize] = {};
  std::memcpy(config + kConfigNumPages, &target_pages_, 4);
  std::memcpy(config + kConfigActual, &actual_pages_, 4);
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < kConfigSize ? config[offset + i] : 0;
  }
}

// Only `actual` (a 32-bit write at offset 4) is the driver's to write.
Result<void> BalloonDevice::write_config(uint64_t offset, std::span<const uint8_t> data) {
  if (offset != kConfigActual || data.size() != 4) {
    return make_error(ErrorCode::kInvalidArgument,
                      "virtio-balloon: {}-byte config write at offset {:#x} (only the 4-byte "
                      "`actual` at 0x4 is writable)",
                      data.size(), offset);
  }
  std::memcpy(&actual_pages_, data.data(), 4);
  counters_.actual_pages = actual_pages_;
  actual_changed_.notify_all();
  return Ok();
}

// Route a notification by the negotiated numbering.
Result<void> BalloonDevice::process_queue(unsigned index) {
  const BalloonQueues queues = balloon_queues(features_);
  if (index == BalloonQueues::kInflate || index == BalloonQueues::kDeflate) {
    return process_pfn_queue(index, index == BalloonQueues::kInflate);
  }
  if (queues.stats && index == *queues.stats) {
    return process_stats_queue(index);
  }
  if (queues.reporting && index == *queues.reporting) {
    return process_reporting_queue(index);
  }
  return Ok();
}

// Take every available PFN buffer, return each, then interrupt once.
Result<void> BalloonDevice::process_pfn_queue(unsigned index, bool inflate) {
  return virtio::return_each_chain(*context_, index, [&](const DescriptorChain& chain) {
    return take_pfn_buffer(chain, inflate);
  });
}

// Read the le32 PFNs (read-only, a multiple of 4 bytes, at most 256), check and coalesce
// them, and hand the runs to the backend.
Result<void> BalloonDevice::take_pfn_buffer(const DescriptorChain& chain, bool inflate) {
  const uint64_t bytes = chain.readable_bytes();
  if (chain.writable_bytes() != 0 || bytes % 4 != 0 || bytes > 4 * kMaxPfnsPerBuffer) {
    return make_error(ErrorCode::kInvalidArgument,
                      "virtio-balloon: {} buffer {} has {} readable and {} writable bytes (at "
                      "most {} le32 PFNs, read-only)",
                      inflate ? "inflate" : "deflate", chain.head, bytes, chain.writable_bytes(),
                      kMaxPfnsPerBuffer);
  }
  std::vector<uint32_t> pfns(bytes / 4);
  HVMM_TRY(virtio::read_chain(context_->memory(), chain,
                              {reinterpret_cast<uint8_t*>(pfns.data()), bytes}));
  PageRuns runs = runs_from_pfns(pfns, ram_);
  counters_.refused_pfns += runs.refused;
  if (runs.runs.empty()) {
    return Ok();
  }
  if (inflate) {
    counters_.inflated_pages += runs.pages;
    note_backend(backend_.inflate(runs.runs));
  } else {
    counters_.deflated_pages += runs.pages;
    note_backend(backend_.deflate(runs.runs));
  }
  return Ok();
}

// A host-side failure is not the guest's: count it and keep the message.
void BalloonDevice::note_backend(const Result<void>& result) {
  if (!result) {
    ++counters_.backend_failures;
    last_backend_failure_ = result.error().message;
  }
}

// Keep the stats buffer (only one may be outstanding) after reading its records.
Result<void> BalloonDevice::process_stats_queue(unsigned index) {
  while (true) {
    auto chain = context_->queue(index).pop(context_->memory());
    HVMM_TRY(chain);
    if (!*chain) {
      return Ok();
    }
    if (held_stats_) {
      return make_error(ErrorCode::kInvalidArgument,
                        "virtio-balloon: stats buffer {} while the device holds buffer {}",
                        (*chain)->head, *held_stats_);
    }
    HVMM_TRY(take_stats_buffer(**chain));
    held_stats_ = (*chain)->head;
  }
}

// Parse {le16 tag, le64 value} records; unknown tags are counted and skipped.
Result<void> BalloonDevice::take_stats_buffer(const DescriptorChain& chain) {
  const uint64_t bytes = chain.readable_bytes();
  if (bytes % kStatRecordBytes != 0 || bytes > kMaxStatsBytes) {
    return make_error(ErrorCode::kInvalidArgument,
                      "virtio-balloon: stats buffer {} has {} bytes (a multiple of {}, at most {})",
                      chain.head, bytes, kStatRecordBytes, kMaxStatsBytes);
  }
  std::vector<uint8_t> records(bytes);
  HVMM_TRY(virtio::read_chain(context_->memory(), chain, records));
  for (size_t at = 0; at < records.size(); at += kStatRecordBytes) {
    uint16_t tag = 0;
    uint64_t value = 0;
    std::memcpy(&tag, &records[at], 2);
    std::memcpy(&value, &records[at + 2], 8);
    if (tag < kBalloonStatCount) {
      counters_.guest_stats[tag] = value;
    } else {
      ++counters_.unknown_stat_tags;
    }
  }
  ++counters_.stats_updates;
  counters_.guest_stats_time = std::chrono::system_clock::now();
  return Ok();
}

// Release every reported range and return its buffer.
Result<void> BalloonDevice::process_reporting_queue(unsigned index) {
  return virtio::return_each_chain(
      *context_, index, [&](const DescriptorChain& chain) { return take_report(chain); });
}

// Each descriptor of a report is one free range (its contents are not read).
Result<void> BalloonDevice::take_report(const DescriptorChain& chain) {
  std::vector<IpaRange> ranges;
  for (const virtio::Buffer& buffer : chain.buffers) {
    ranges.push_back(IpaRange{buffer.address, buffer.length});
  }
  PageRuns runs = runs_from_ranges(ranges, ram_);
  counters_.refused_pfns += runs.refused;
  if (!runs.runs.empty()) {
    counters_.reported_pages += runs.pages;
    note_backend(backend_.report(runs.runs));
  }
  return Ok();
}

// The driver reset the device: it holds nothing and has no buffers posted.
void BalloonDevice::reset() {
  features_ = 0;
  held_stats_.reset();
  actual_pages_ = 0;
  counters_.actual_pages = 0;
  actual_changed_.notify_all();
}

// Change num_pages and tell the driver.
void BalloonDevice::set_target_pages(uint64_t pages) {
  std::lock_guard guard(context_->lock());
  target_pages_ =
      static_cast<uint32_t>(std::min<uint64_t>(pages, std::numeric_limits<uint32_t>::max()));
  context_->config_changed();
  actual_changed_.notify_all();
}

// Wait on `actual` writes until it matches the target.
Result<void> BalloonDevice::wait_for_target(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock guard(context_->lock());
  if (actual_changed_.wait_until(guard, deadline, [&] { return actual_pages_ == target_pages_; })) {
    return Ok();
  }
  return make_error(ErrorCode::kUnavailable,
                    "virtio-balloon: actual {} pages did not reach the target {} pages in time",
                    actual_pages_, target_pages_);
}

// Give the stats buffer back to a live driver.
void BalloonDevice::request_stats() {
  std::lock_guard guard(context_->lock());
  if (!held_stats_ || !context_->live() || !balloon_queues(features_).stats) {
    return;
  }
  const uint16_t head = *held_stats_;
  held_stats_.reset();
  auto pushed =
      context_->queue(*balloon_queues(features_).stats).push_used(context_->memory(), head, 0);
  if (!pushed) {
    context_->needs_reset(pushed.error().message);
    return;
  }
  context_->signal_used();
}

// A consistent snapshot under the transport's lock.
BalloonStatistics BalloonDevice::statistics() const {
  std::lock_guard guard(context_->lock());
  BalloonStatistics snapshot = counters_;
  snapshot.target_pages = target_pages_;
  snapshot.actual_pages = actual_pages_;
  snapshot.features = features_;
  return snapshot;
}

std::string BalloonDevice::last_backend_failure() const {
  std::lock_guard guard(context_->lock());
  return last_backend_failure_;
}

}  // namespace hvmm::vmm
