// Tests of the --stats formatter: the exact JSON text for fixed figures, and the summary's
// fault counts by kind.
#include "hvmm/vmm/machine/memory_report.h"

#include <gtest/gtest.h>

#include <limits>

namespace hvmm::vmm {
namespace {

using stage2::Backing;

// Figures of a VM that touched some memory, ballooned some and took faults of two kinds.
MemoryReport sample_report() {
  MemoryReport report;
  report.vm = "run";
  report.exit_status = 0;
  report.memory_bytes = 256 << 20;
  report.userfaultfd = true;
  report.fault_around_max = 2 << 20;
  report.host = ProcessMemory{.rss = 40 << 20,
                              .rss_peak = 50 << 20,
                              .rss_anon = 4 << 20,
                              .rss_file = 2 << 20,
                              .rss_shmem = 34 << 20};
  report.pages.emplace();
  (*report.pages)[Backing::kResident] = 60000;
  (*report.pages)[Backing::kBallooned] = 5000;
  (*report.pages)[Backing::kReported] = 536;
  report.memfd_allocated_bytes = 33 << 20;
  BalloonStatistics balloon;
  balloon.target_pages = 5000;
  balloon.actual_pages = 4096;
  balloon.inflated_pages = 5000;
  balloon.guest_stats[static_cast<size_t>(BalloonStat::kFreeMemory)] = 1 << 20;
  report.balloon = balloon;
  report.faults.faults[static_cast<size_t>(FaultKind::kMissing)]
                      [static_cast<size_t>(FaultResolution::kZeroFill)] = 40;
  report.faults.faults[static_cast<size_t>(FaultKind::kMissing)]
                      [static_cast<size_t>(FaultResolution::kWoken)] = 2;
  report.faults.faults[static_cast<size_t>(FaultKind::kMmioUnbacked)]
                      [static_cast<size_t>(FaultResolution::kReadAllOnes)] = 3;
  report.faults.latency_ns_max[static_cast<size_t>(FaultKind::kMissing)] = 9000;
  report.faults.latency_ns_max[static_cast<size_t>(FaultKind::kMmioUnbacked)] = 700;
  report.faults.pages_filled = 8192;
  return report;
}

// Every section appears in its fixed order with the exact figures, on one line.
TEST(MemoryReport, FormatsEveryFieldExactly) {
  EXPECT_EQ(format_memory_report(sample_report()),
            R"({"vm":"run","exit_status":0,"ended_by":"guest","memory_bytes":268435456,)"
            R"("userfaultfd":true,"fault_around_max":2097152,)"
            R"("host":{"rss_peak_bytes":52428800,"rss_bytes":41943040,"rss_shmem_bytes":35651584,)"
            R"("rss_anon_bytes":4194304,"rss_file_bytes":2097152},)"
            R"("pages":{"resident":60000,"ballooned":5000,"reported":536,"reclaimed":0,)"
            R"("resident_bytes":245760000,"ballooned_bytes":20480000,"reported_bytes":2195456,)"
            R"("reclaimed_bytes":0},"memfd_allocated_bytes":34603008,)"
            R"("balloon":{"target_bytes":20480000,"actual_bytes":16777216,"target_pages":5000,)"
            R"("actual_pages":4096,"inflated_pages":5000,"deflated_pages":0,"reported_pages":0,)"
            R"("refused_pfns":0,"backend_failures":0,"stats_updates":0,"features":0,)"
            R"("guest_stats":{"free-memory":1048576}},)"
            R"("faults":{"total":45,"by_kind":{"unbacked":3,"missing":42,"ballooned":0,)"
            R"("reclaimed":0,"write-protect":0,"write-protected":0,"memslot-race":0},)"
            R"("by_kind_and_resolution":{"unbacked":{"read-all-ones":3},)"
            R"("missing":{"zero-fill":40,"woken":2}},"latency_ns_max":{"unbacked":700,)"
            R"("missing":9000},"pages_filled":8192,"pages_existing":0,"unattributed":0,)"
            R"("userfaultfd_removes":0,"userfaultfd_bytes_removed":0}})"
            "\n");
}

// What cannot be measured is null (with the reason for /proc), and strings are escaped.
TEST(MemoryReport, MissingFiguresAreNull) {
  MemoryReport report;
  report.vm = "a\"b";
  report.exit_status = 125;
  report.ended_by_vmm = true;
  report.host_error = "cannot read /proc/self/status";
  const std::string text = format_memory_report(report);
  EXPECT_NE(text.find(R"("vm":"a\"b","exit_status":125,"ended_by":"vmm")"), std::string::npos)
      << text;
  EXPECT_NE(text.find(R"("host":null,"host_error":"cannot read /proc/self/status")"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"("pages":null,"memfd_allocated_bytes":null,"balloon":null,)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"("by_kind_and_resolution":{},"latency_ns_max":{})"), std::string::npos)
      << text;
}

// A VM without reclaim has none of the reclaim sections (the report ends with "faults").
TEST(MemoryReport, NoReclaimSectionsWithoutReclaim) {
  const std::string text = format_memory_report(sample_report());
  EXPECT_EQ(text.find("\"reclaim\":"), std::string::npos) << text;
  EXPECT_EQ(text.find("\"pool\":"), std::string::npos) << text;
  EXPECT_EQ(text.find("\"working_set\":"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("userfaultfd_bytes_removed":0}})"
                      "\n"),
            std::string::npos)
      << text;
}

// The sample with the figures of a VM that ran with --reclaim.
MemoryReport sample_reclaim_report() {
  MemoryReport report = sample_report();
  ReclaimReport reclaim;
  reclaim.policy = *parse_reclaim_policy("target=64M,period=1s,cold=3");
  ReclaimStats& s = reclaim.stats;
  s.epochs = 10;
  s.scanned_pages = 1000;
  s.reclaimed_pages = 800;
  s.aborted_pages = 2;
  s.incompressible_pages = 50;
  s.refaults = 7;
  s.refaults_activated = 3;
  s.vmm_restores = 1;
  s.reclaimed_now = 790;
  s.backoffs = 1;
  s.promotion_rate = 0.0015;
  s.refault_latency.add(0);                  // bucket 0: [0, 2)
  s.refault_latency.add(5000);               // bucket 12: [4096, 8192)
  s.refault_latency.add(6000);               // bucket 12
  s.refault_latency.add(uint64_t{1} << 50);  // the last bucket: [2^39, ...)
  report.reclaim = reclaim;
  ReclaimStoreStats pool;
  pool.codec = "lz4";
  pool.entries = 800;
  pool.compressed_pages = 300;
  pool.zero_pages = 400;
  pool.same_filled_pages = 50;
  pool.swapped_pages = 50;
  pool.payload_bytes = 600000;
  pool.pool_bytes = 800000;
  pool.limit_bytes = 64 << 20;
  pool.swap_bytes = 204800;
  pool.stores = 850;
  pool.incompressible_rejects = 50;
  pool.loads = 7;
  pool.swap_writes = 50;
  pool.swap_reads = 1;
  report.pool = pool;
  WorkingSetEstimate working_set;
  working_set.pages = {100, 200, 300, 400, 500};
  working_set.epoch = 42;
  report.working_set = working_set;
  return report;
}

// With reclaim the three sections follow "faults" in order, every field exactly: the
// histogram as its non-empty buckets with mean and quantile bounds, the pool's ratio (300
// pages in 600000 bytes: 2.048) and fragmentation (1 - 600000 / 800000), bins in ms.
TEST(MemoryReport, FormatsReclaimSectionsExactly) {
  const std::string text = format_memory_report(sample_reclaim_report());
  const std::string faults_end = R"("userfaultfd_bytes_removed":0},)";
  const size_t start = text.find(faults_end);
  ASSERT_NE(start, std::string::npos) << text;
  EXPECT_EQ(
      text.substr(start + faults_end.size()),
      R"("reclaim":{"policy":"target=64M,period=1s,cold=3,refault=3,active=12,budget=0.2%,)"
      R"(rate=64M,codec=lz4,keep=75%,dirty=log","epochs":10,"scanned_pages":1000,)"
      R"("reclaimed_pages":800,"aborted_pages":2,"incompressible_pages":50,"full_pages":0,)"
      R"("refaults":7,"refaults_activated":3,"vmm_restores":1,"reclaimed_now":790,)"
      R"("reclaimed_now_bytes":3235840,"backoffs":1,"errors":0,"promotion_rate":0.0015,)"
      R"("refault_latency":{"samples":4,"mean_ns":281474976713406,"p50_ns_max":8192,)"
      R"("p99_ns_max":1099511627776,"buckets":[{"from_ns":0,"below_ns":2,"count":1},)"
      R"({"from_ns":4096,"below_ns":8192,"count":2},)"
      R"({"from_ns":549755813888,"below_ns":null,"count":1}]}},)"
      R"("pool":{"codec":"lz4","entries":800,"compressed_pages":300,"zero_pages":400,)"
      R"("same_filled_pages":50,"swapped_pages":50,"payload_bytes":600000,"pool_bytes":800000,)"
      R"("limit_bytes":67108864,"swap_bytes":204800,"stores":850,"incompressible_rejects":50,)"
      R"("full_rejects":0,"loads":7,"load_errors":0,"swap_writes":50,"swap_reads":1,)"
      R"("compression_ratio":2.048,"fragmentation":0.25},)"
      R"("working_set":{"epoch":42,"bins":[)"
      R"({"from_ms":0,"below_ms":1000,"pages":100,"bytes":409600},)"
      R"({"from_ms":1000,"below_ms":10000,"pages":200,"bytes":819200},)"
      R"({"from_ms":10000,"below_ms":60000,"pages":300,"bytes":1228800},)"
      R"({"from_ms":60000,"below_ms":120000,"pages":400,"bytes":1638400},)"
      R"({"from_ms":120000,"below_ms":null,"pages":500,"bytes":2048000}]}})"
      "\n");
}

// An empty histogram and pool report zeros and no buckets; a ratio that is not finite is
// null (JSON has no NaN).
TEST(MemoryReport, EmptyReclaimFiguresAndNonFiniteRatios) {
  MemoryReport report;
  report.reclaim = ReclaimReport{};
  report.reclaim->stats.promotion_rate = std::numeric_limits<double>::quiet_NaN();
  report.pool.emplace();
  report.pool->codec = "zstd";
  const std::string text = format_memory_report(report);
  EXPECT_NE(text.find(R"("promotion_rate":null,"refault_latency":{"samples":0,"mean_ns":0,)"
                      R"("p50_ns_max":0,"p99_ns_max":0,"buckets":[]}})"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"("codec":"zstd","entries":0,)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("compression_ratio":0,"fragmentation":0})"), std::string::npos) << text;
  EXPECT_EQ(text.find("\"working_set\":"), std::string::npos) << text;
}

// The summary lists only the kinds counted, in FaultKind order; nothing when none were.
TEST(MemoryReport, FaultCountsByKindListsCountedKinds) {
  EXPECT_EQ(fault_counts_by_kind(sample_report().faults), "unbacked 3, missing 42");
  EXPECT_EQ(fault_counts_by_kind(FaultCounts{}), "");
}

}  // namespace
}  // namespace hvmm::vmm
