// Formatting of the --stats JSON object.
#include "hvmm/vmm/machine/memory_report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <vector>

#include "hvmm/vmm/fault/fault_log.h"

namespace hvmm::vmm {
namespace {

using stage2::Backing;

// The FaultKind values that exist (1..7; 0 is no kind).
constexpr FaultKind kKinds[] = {
    FaultKind::kMmioUnbacked, FaultKind::kMissing,    FaultKind::kBallooned,  FaultKind::kReclaimed,
    FaultKind::kWriteProtect, FaultKind::kPermission, FaultKind::kMemslotRace};

// Join `parts` with commas inside `open` and `close`.
std::string joined(const std::vector<std::string>& parts, char open, char close) {
  return open + fmt::format("{}", fmt::join(parts, ",")) + close;
}

// "host": the process's figures in bytes, or null with the reason beside it.
std::string host_json(const MemoryReport& report) {
  if (!report.host) {
    return fmt::format("\"host\":null,\"host_error\":\"{}\"", json_escape(report.host_error));
  }
  const ProcessMemory& m = *report.host;
  return fmt::format(
      "\"host\":{{\"rss_peak_bytes\":{},\"rss_bytes\":{},\"rss_shmem_bytes\":{},"
      "\"rss_anon_bytes\":{},\"rss_file_bytes\":{}}}",
      m.rss_peak, m.rss, m.rss_shmem, m.rss_anon, m.rss_file);
}

// "pages": stage-2 page counts by state, then the same in bytes; null when unknown.
std::string pages_json(const std::optional<PageCounts>& known) {
  if (!known) {
    return "\"pages\":null";
  }
  const PageCounts& pages = *known;
  const std::pair<const char*, Backing> states[] = {{"resident", Backing::kResident},
                                                    {"ballooned", Backing::kBallooned},
                                                    {"reported", Backing::kReported},
                                                    {"reclaimed", Backing::kReclaimed}};
  std::vector<std::string> parts;
  for (const auto& [name, backing] : states)
    parts.push_back(fmt::format("\"{}\":{}", name, pages[backing]));
  for (const auto& [name, backing] : states)
    parts.push_back(fmt::format("\"{}_bytes\":{}", name, pages[backing] * kPageSize));
  return "\"pages\":" + joined(parts, '{', '}');
}

// "balloon": the device's snapshot, guest stats by Linux's tag names; null without a balloon.
std::string balloon_json(const std::optional<BalloonStatistics>& balloon) {
  if (!balloon) {
    return "\"balloon\":null";
  }
  const BalloonStatistics& b = *balloon;
  std::vector<std::string> stats;
  for (uint16_t tag = 0; tag < kBalloonStatCount; ++tag) {
    if (b.guest_stats[tag])
      stats.push_back(fmt::format("\"{}\":{}", balloon_stat_name(tag), *b.guest_stats[tag]));
  }
  return fmt::format(
      "\"balloon\":{{\"target_bytes\":{},\"actual_bytes\":{},\"target_pages\":{},"
      "\"actual_pages\":{},\"inflated_pages\":{},\"deflated_pages\":{},\"reported_pages\":{},"
      "\"refused_pfns\":{},\"backend_failures\":{},\"stats_updates\":{},\"features\":{},"
      "\"guest_stats\":{}}}",
      b.target_pages * kPageSize, b.actual_pages * kPageSize, b.target_pages, b.actual_pages,
      b.inflated_pages, b.deflated_pages, b.reported_pages, b.refused_pfns, b.backend_failures,
      b.stats_updates, b.features, joined(stats, '{', '}'));
}

// "faults": totals by kind (every kind), by kind and resolution (only what was counted),
// the worst latency per counted kind, and the handler's page and event counters.
std::string faults_json(const FaultCounts& counts) {
  std::vector<std::string> by_kind;
  std::vector<std::string> by_resolution;
  std::vector<std::string> latency_max;
  for (FaultKind kind : kKinds) {
    const auto k = static_cast<size_t>(kind);
    by_kind.push_back(fmt::format("\"{}\":{}", fault_kind_name(kind), counts.of_kind(kind)));
    std::vector<std::string> resolutions;
    for (size_t r = 0; r < kFaultResolutionCount; ++r) {
      if (counts.faults[k][r] != 0)
        resolutions.push_back(fmt::format("\"{}\":{}",
                                          fault_resolution_name(static_cast<FaultResolution>(r)),
                                          counts.faults[k][r]));
    }
    if (!resolutions.empty()) {
      by_resolution.push_back(
          fmt::format("\"{}\":{}", fault_kind_name(kind), joined(resolutions, '{', '}')));
      latency_max.push_back(
          fmt::format("\"{}\":{}", fault_kind_name(kind), counts.latency_ns_max[k]));
    }
  }
  return fmt::format(
      "\"faults\":{{\"total\":{},\"by_kind\":{},\"by_kind_and_resolution\":{},"
      "\"latency_ns_max\":{},\"pages_filled\":{},\"pages_existing\":{},\"unattributed\":{},"
      "\"userfaultfd_removes\":{},\"userfaultfd_bytes_removed\":{}}}",
      counts.total(), joined(by_kind, '{', '}'), joined(by_resolution, '{', '}'),
      joined(latency_max, '{', '}'), counts.pages_filled, counts.pages_existing,
      counts.unattributed, counts.removes, counts.bytes_removed);
}

// A ratio as a JSON number (shortest text that reads back the same); null if not finite.
std::string json_number(double value) {
  return std::isfinite(value) ? fmt::format("{}", value) : std::string("null");
}

// The histogram's non-empty buckets as [from, below) ns (the last bucket has no bound: null),
// then its sample count, mean and the upper bounds of the buckets holding p50 and p99.
std::string latency_json(const LatencyHistogram& histogram) {
  std::vector<std::string> buckets;
  for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
    if (histogram.counts[i] == 0)
      continue;
    const uint64_t from = i == 0 ? 0 : uint64_t{1} << i;
    const std::string below = i + 1 == LatencyHistogram::kBuckets
                                  ? std::string("null")
                                  : fmt::format("{}", uint64_t{2} << i);
    buckets.push_back(fmt::format("{{\"from_ns\":{},\"below_ns\":{},\"count\":{}}}", from, below,
                                  histogram.counts[i]));
  }
  return fmt::format(
      "{{\"samples\":{},\"mean_ns\":{},\"p50_ns_max\":{},\"p99_ns_max\":{},\"buckets\":{}}}",
      histogram.samples, histogram.mean_ns(), histogram.quantile_upper_ns(0.5),
      histogram.quantile_upper_ns(0.99), joined(buckets, '[', ']'));
}

// "reclaim": the policy in its own syntax, every ReclaimStats counter, the refault latency.
std::string reclaim_json(const ReclaimReport& reclaim) {
  const ReclaimStats& s = reclaim.stats;
  return fmt::format(
      "\"reclaim\":{{\"policy\":\"{}\",\"epochs\":{},\"scanned_pages\":{},\"reclaimed_pages\":{},"
      "\"aborted_pages\":{},\"incompressible_pages\":{},\"full_pages\":{},\"refaults\":{},"
      "\"refaults_activated\":{},\"vmm_restores\":{},\"reclaimed_now\":{},"
      "\"reclaimed_now_bytes\":{},\"backoffs\":{},\"errors\":{},\"promotion_rate\":{},"
      "\"refault_latency\":{}}}",
      json_escape(format_reclaim_policy(reclaim.policy)), s.epochs, s.scanned_pages,
      s.reclaimed_pages, s.aborted_pages, s.incompressible_pages, s.full_pages, s.refaults,
      s.refaults_activated, s.vmm_restores, s.reclaimed_now, s.reclaimed_now * kPageSize,
      s.backoffs, s.errors, json_number(s.promotion_rate), latency_json(s.refault_latency));
}

// "pool": every ReclaimStoreStats field, then its compression ratio and fragmentation.
std::string pool_json(const ReclaimStoreStats& p) {
  return fmt::format(
      "\"pool\":{{\"codec\":\"{}\",\"entries\":{},\"compressed_pages\":{},\"zero_pages\":{},"
      "\"same_filled_pages\":{},\"swapped_pages\":{},\"payload_bytes\":{},\"pool_bytes\":{},"
      "\"limit_bytes\":{},\"swap_bytes\":{},\"stores\":{},\"incompressible_rejects\":{},"
      "\"full_rejects\":{},\"loads\":{},\"load_errors\":{},\"swap_writes\":{},\"swap_reads\":{},"
      "\"compression_ratio\":{},\"fragmentation\":{}}}",
      json_escape(std::string(p.codec)), p.entries, p.compressed_pages, p.zero_pages,
      p.same_filled_pages, p.swapped_pages, p.payload_bytes, p.pool_bytes, p.limit_bytes,
      p.swap_bytes, p.stores, p.incompressible_rejects, p.full_rejects, p.loads, p.load_errors,
      p.swap_writes, p.swap_reads, json_number(p.compression_ratio()),
      json_number(p.fragmentation()));
}

// "working_set": the bins as [from, below) ms of idle age (the last has no bound: null),
// each with its pages and bytes, and the epoch of the estimate.
std::string working_set_json(const WorkingSetEstimate& estimate) {
  std::vector<std::string> bins;
  for (size_t i = 0; i < WorkingSetEstimate::kBins; ++i) {
    const int64_t from = i == 0 ? 0 : estimate.bounds[i - 1].count();
    const std::string below = i + 1 == WorkingSetEstimate::kBins
                                  ? std::string("null")
                                  : fmt::format("{}", estimate.bounds[i].count());
    bins.push_back(fmt::format("{{\"from_ms\":{},\"below_ms\":{},\"pages\":{},\"bytes\":{}}}", from,
                               below, estimate.pages[i], estimate.pages[i] * kPageSize));
  }
  return fmt::format("\"working_set\":{{\"epoch\":{},\"bins\":{}}}", estimate.epoch,
                     joined(bins, '[', ']'));
}

}  // namespace

// Fixed field order, so the text for a given input never changes.
std::string format_memory_report(const MemoryReport& report) {
  const std::string allocated = report.memfd_allocated_bytes
                                    ? fmt::format("{}", *report.memfd_allocated_bytes)
                                    : std::string("null");
  std::vector<std::string> parts = {
      fmt::format("\"vm\":\"{}\"", json_escape(report.vm)),
      fmt::format("\"exit_status\":{}", report.exit_status),
      fmt::format("\"ended_by\":\"{}\"", report.ended_by_vmm ? "vmm" : "guest"),
      fmt::format("\"memory_bytes\":{}", report.memory_bytes),
      fmt::format("\"userfaultfd\":{}", report.userfaultfd),
      fmt::format("\"fault_around_max\":{}", report.fault_around_max),
      host_json(report),
      pages_json(report.pages),
      fmt::format("\"memfd_allocated_bytes\":{}", allocated),
      balloon_json(report.balloon),
      faults_json(report.faults),
  };
  if (report.reclaim)
    parts.push_back(reclaim_json(*report.reclaim));
  if (report.pool)
    parts.push_back(pool_json(*report.pool));
  if (report.working_set)
    parts.push_back(working_set_json(*report.working_set));
  return joined(parts, '{', '}') + "\n";
}

std::string fault_counts_by_kind(const FaultCounts& counts) {
  std::vector<std::string> parts;
  for (FaultKind kind : kKinds) {
    if (const uint64_t n = counts.of_kind(kind); n != 0)
      parts.push_back(fmt::format("{} {}", fault_kind_name(kind), n));
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace hvmm::vmm
