// ReclaimStats and WorkingSetEstimate: what the reclaim engine reports (--stats, the daemon).
#pragma once

#include <array>
#include <bit>
#include <chrono>
#include <cstdint>

namespace hvmm::vmm {

// Latencies in power-of-two buckets of nanoseconds: bucket i counts [2^i, 2^(i+1)) ns
// (bucket 0 also counts 0, the last bucket everything above).
struct LatencyHistogram {
  static constexpr size_t kBuckets = 40;
  std::array<uint64_t, kBuckets> counts{};
  uint64_t total_ns = 0;
  uint64_t samples = 0;

  void add(uint64_t ns) {
    size_t bucket = ns == 0 ? 0 : static_cast<size_t>(std::bit_width(ns) - 1);
    counts[bucket < kBuckets ? bucket : kBuckets - 1] += 1;
    total_ns += ns;
    samples += 1;
  }
  // The upper bound (ns) of the bucket holding the `fraction` quantile (0: no samples).
  uint64_t quantile_upper_ns(double fraction) const {
    uint64_t wanted = static_cast<uint64_t>(fraction * static_cast<double>(samples));
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts[i];
      if (seen > wanted || (seen == samples && counts[i] != 0))
        return uint64_t{2} << i;
    }
    return 0;
  }
  uint64_t mean_ns() const { return samples == 0 ? 0 : total_ns / samples; }
};

// What the engine has done (a snapshot; counters are totals since the VM started).
struct ReclaimStats {
  uint64_t epochs = 0;                // dirty-log harvests
  uint64_t scanned_pages = 0;         // candidates looked at
  uint64_t reclaimed_pages = 0;       // pages moved to the store
  uint64_t aborted_pages = 0;         // written during their reclaim window: left resident
  uint64_t incompressible_pages = 0;  // kept resident because they do not compress
  uint64_t full_pages = 0;            // kept resident because the pool was full
  uint64_t refaults = 0;              // guest touches of reclaimed pages
  uint64_t refaults_activated = 0;    // of them within their refault distance
  uint64_t vmm_restores = 0;          // reclaimed pages the VMM itself accessed
  uint64_t reclaimed_now = 0;         // pages that are reclaimed at present
  uint64_t backoffs = 0;              // epochs that skipped reclaim (promotion budget)
  uint64_t errors = 0;                // passes that failed (named in the log)
  double promotion_rate = 0;          // promotions in the last minute / footprint pages
  LatencyHistogram refault_latency;   // fault seen to page restored
};

// Pages by idle age (epochs since the last write or refault, in time), measured from outside
// the guest: the figure that says how much a VM could give.
struct WorkingSetEstimate {
  static constexpr size_t kBins = 5;
  // Upper bounds of the first four bins; the last bin is everything older.
  std::array<std::chrono::milliseconds, kBins - 1> bounds{
      std::chrono::seconds(1), std::chrono::seconds(10), std::chrono::seconds(60),
      std::chrono::seconds(120)};
  std::array<uint64_t, kBins> pages{};  // resident or reclaimed RAM pages per bin
  uint64_t epoch = 0;                   // the epoch the estimate was taken at
};

}  // namespace hvmm::vmm
