// BalloonDevice: virtio-balloon (device id 5) over the virtio-mmio transport.
//
// Features offered, and why:
// - STATS_VQ: the guest's memory statistics (every Linux 6.12 tag, balloon_stats.h).
// - DEFLATE_ON_OOM: the guest may take pages back under memory pressure; the device needs
//   nothing more than the deflate queue for it.
// - REPORTING (only with BalloonOptions::free_page_reporting): free page reporting.
// - not MUST_TELL_HOST: hvmm needs no warning before the guest reuses a deflated page (the
//   page is refilled with zeros when touched), so the driver need not wait for the device.
// - not FREE_PAGE_HINT (a migration aid; hvmm does not migrate, and reporting releases free
//   memory for good), not PAGE_POISON (released pages come back as zeros, never poisoned).
// Queues are numbered compactly: inflate 0, deflate 1, then stats and reporting, each only
// when negotiated. Inflate/deflate buffers carry at most 256 le32 PFNs; a PFN outside RAM
// (or in the MMIO hole) is refused and counted, and the buffer is still returned. The stats
// buffer is kept until the host wants fresh numbers (request_stats(), called every
// --balloon-stats-interval), then returned for the driver to refill. Reported ranges are
// released and their buffers returned. Thread-safety: the host-side methods take the
// transport's lock (virtio_device.h).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hvmm/vmm/devices/balloon/balloon_backend.h"
#include "hvmm/vmm/devices/balloon/balloon_stats.h"
#include "hvmm/vmm/devices/virtio/virtio_device.h"

namespace hvmm::vmm {

// Balloon feature bits (OASIS virtio 1.2, section 5.5.3).
inline constexpr unsigned kBalloonFeatureMustTellHost = 0;
inline constexpr unsigned kBalloonFeatureStatsVq = 1;
inline constexpr unsigned kBalloonFeatureDeflateOnOom = 2;
inline constexpr unsigned kBalloonFeatureFreePageHint = 3;
inline constexpr unsigned kBalloonFeaturePagePoison = 4;
inline constexpr unsigned kBalloonFeatureReporting = 5;
inline constexpr uint32_t kBalloonDeviceId = 5;
inline constexpr size_t kMaxPfnsPerBuffer = 256;

// BalloonOptions are the host's choices for one balloon.
struct BalloonOptions {
  uint64_t initial_target_pages = 0;
  bool free_page_reporting = false;
};

// BalloonQueues is the compact queue numbering for one feature set.
struct BalloonQueues {
  static constexpr unsigned kInflate = 0;
  static constexpr unsigned kDeflate = 1;
  std::optional<unsigned> stats;
  std::optional<unsigned> reporting;
  unsigned count = 2;
};
BalloonQueues balloon_queues(uint64_t features);

class BalloonDevice final : public virtio::VirtioDevice {
 public:
  // Release pages through `backend`; `ram` is the guest's RAM (PFNs are checked against it).
  BalloonDevice(BalloonBackend& backend, std::vector<IpaRange> ram, BalloonOptions options);

  // Ask the guest to hold `pages` pages (config num_pages; a config-change interrupt).
  void set_target_pages(uint64_t pages);
  // Wait until the driver's `actual` equals the target, or fail at `deadline`.
  Result<void> wait_for_target(std::chrono::steady_clock::time_point deadline);
  // Return the held stats buffer so the driver refills it (no-op when none is held).
  void request_stats();
  BalloonStatistics statistics() const;
  // The last backend failure ("" when none).
  std::string last_backend_failure() const;

  const char* name() const override { return "virtio-balloon"; }
  uint32_t device_id() const override { return kBalloonDeviceId; }
  uint64_t offered_features() const override;
  unsigned queue_count(uint64_t features) const override;
  void attach(virtio::VirtioContext& context) override { context_ = &context; }
  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  Result<void> write_config(uint64_t offset, std::span<const uint8_t> data) override;
  void activate(uint64_t features) override { features_ = features; }
  Result<void> process_queue(unsigned index) override;
  void reset() override;

 private:
  Result<void> process_pfn_queue(unsigned index, bool inflate);
  Result<void> take_pfn_buffer(const virtio::DescriptorChain& chain, bool inflate);
  Result<void> process_stats_queue(unsigned index);
  Result<void> take_stats_buffer(const virtio::DescriptorChain& chain);
  Result<void> process_reporting_queue(unsigned index);
  Result<void> take_report(const virtio::DescriptorChain& chain);
  void note_backend(const Result<void>& result);

  BalloonBackend& backend_;
  std::vector<IpaRange> ram_;
  BalloonOptions options_;
  virtio::VirtioContext* context_ = nullptr;
  uint64_t features_ = 0;
  uint32_t target_pages_;
  uint32_t actual_pages_ = 0;
  std::optional<uint16_t> held_stats_;  // head of the stats buffer the device keeps
  BalloonStatistics counters_;
  std::string last_backend_failure_;
  std::condition_variable actual_changed_;
};

}  // namespace hvmm::vmm
