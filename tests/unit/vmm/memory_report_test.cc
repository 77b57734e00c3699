// Tests of the --stats formatter: the exact JSON text for fixed figures, and the summary's
// fault counts by kind.
#include "hvmm/vmm/machine/memory_report.h"

#include <gtest/gtest.h>

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

// The summary lists only the kinds counted, in FaultKind order; nothing when none were.
TEST(MemoryReport, FaultCountsByKindListsCountedKinds) {
  EXPECT_EQ(fault_counts_by_kind(sample_report().faults), "unbacked 3, missing 42");
  EXPECT_EQ(fault_counts_by_kind(FaultCounts{}), "");
}

}  // namespace
}  // namespace hvmm::vmm
