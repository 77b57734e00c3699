// FaultCounts: what the fault handler has seen, by kind and resolution, with latencies.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>

#include "hvmm/vmm/fault/fault_kind.h"

namespace hvmm::vmm {

// A snapshot of the counters (plain numbers, copyable).
struct FaultCounts {
  std::array<std::array<uint64_t, kFaultResolutionCount>, kFaultKindCount> faults{};
  std::array<uint64_t, kFaultKindCount> latency_ns_total{};  // first seen to woken
  std::array<uint64_t, kFaultKindCount> latency_ns_max{};
  uint64_t pages_filled = 0;    // pages this handler filled (fault-around included)
  uint64_t pages_existing = 0;  // pages of a window another path had filled (EEXIST)
  uint64_t unattributed = 0;    // faults of threads that are no vCPU
  uint64_t removes = 0;         // UFFD_EVENT_REMOVE messages
  uint64_t bytes_removed = 0;
  uint64_t other_events = 0;  // messages of any other type (none are requested)

  // Faults of `kind`, however resolved.
  uint64_t of_kind(FaultKind kind) const {
    uint64_t total = 0;
    for (uint64_t n : faults[static_cast<size_t>(kind)])
      total += n;
    return total;
  }
  // Faults resolved as `resolution`, of any kind.
  uint64_t resolved(FaultResolution resolution) const {
    uint64_t total = 0;
    for (const auto& row : faults)
      total += row[static_cast<size_t>(resolution)];
    return total;
  }
  // Add `other`'s counts (latency maxima take the larger), e.g. the handler's and the MMIO
  // faults the Machine logs.
  FaultCounts& operator+=(const FaultCounts& other) {
    for (size_t k = 0; k < kFaultKindCount; ++k) {
      for (size_t r = 0; r < kFaultResolutionCount; ++r)
        faults[k][r] += other.faults[k][r];
      latency_ns_total[k] += other.latency_ns_total[k];
      latency_ns_max[k] = std::max(latency_ns_max[k], other.latency_ns_max[k]);
    }
    pages_filled += other.pages_filled;
    pages_existing += other.pages_existing;
    unattributed += other.unattributed;
    removes += other.removes;
    bytes_removed += other.bytes_removed;
    other_events += other.other_events;
    return *this;
  }
  // Every fault.
  uint64_t total() const {
    uint64_t sum = 0;
    for (const auto& row : faults)
      for (uint64_t n : row)
        sum += n;
    return sum;
  }
};

// FaultCounters is the live, thread-safe form the handler threads update.
class FaultCounters {
 public:
  // Count one fault and its latency.
  void fault(FaultKind kind, FaultResolution resolution, uint64_t latency_ns) {
    const auto k = static_cast<size_t>(kind);
    faults_[k][static_cast<size_t>(resolution)].fetch_add(1, std::memory_order_relaxed);
    latency_total_[k].fetch_add(latency_ns, std::memory_order_relaxed);
    uint64_t seen = latency_max_[k].load(std::memory_order_relaxed);
    while (latency_ns > seen &&
           !latency_max_[k].compare_exchange_weak(seen, latency_ns, std::memory_order_relaxed)) {
    }
  }
  void add_filled(uint64_t pages) { pages_filled_.fetch_add(pages, std::memory_order_relaxed); }
  void add_existing(uint64_t pages) { pages_existing_.fetch_add(pages, std::memory_order_relaxed); }
  void add_unattributed() { unattributed_.fetch_add(1, std::memory_order_relaxed); }
  void add_remove(uint64_t bytes) {
    removes_.fetch_add(1, std::memory_order_relaxed);
    bytes_removed_.fetch_add(bytes, std::memory_order_relaxed);
  }
  void add_other_event() { other_events_.fetch_add(1, std::memory_order_relaxed); }

  // Copy every counter (each one atomically; the set is not a single instant).
  FaultCounts snapshot() const {
    FaultCounts out;
    for (size_t k = 0; k < kFaultKindCount; ++k) {
      for (size_t r = 0; r < kFaultResolutionCount; ++r) {
        out.faults[k][r] = faults_[k][r].load(std::memory_order_relaxed);
      }
      out.latency_ns_total[k] = latency_total_[k].load(std::memory_order_relaxed);
      out.latency_ns_max[k] = latency_max_[k].load(std::memory_order_relaxed);
    }
    out.pages_filled = pages_filled_.load(std::memory_order_relaxed);
    out.pages_existing = pages_existing_.load(std::memory_order_relaxed);
    out.unattributed = unattributed_.load(std::memory_order_relaxed);
    out.removes = removes_.load(std::memory_order_relaxed);
    out.bytes_removed = bytes_removed_.load(std::memory_order_relaxed);
    out.other_events = other_events_.load(std::memory_order_relaxed);
    return out;
  }

 private:
  std::array<std::array<std::atomic<uint64_t>, kFaultResolutionCount>, kFaultKindCount> faults_{};
  std::array<std::atomic<uint64_t>, kFaultKindCount> latency_total_{};
  std::array<std::atomic<uint64_t>, kFaultKindCount> latency_max_{};
  std::atomic<uint64_t> pages_filled_{0};
  std::atomic<uint64_t> pages_existing_{0};
  std::atomic<uint64_t> unattributed_{0};
  std::atomic<uint64_t> removes_{0};
  std::atomic<uint64_t> bytes_removed_{0};
  std::atomic<uint64_t> other_events_{0};
};

}  // namespace hvmm::vmm
