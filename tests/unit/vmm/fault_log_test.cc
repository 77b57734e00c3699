// Tests of the stage-2 fault log: the exact JSON line and the rate limit's accounting.
#include "hvmm/vmm/fault/fault_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

namespace hvmm::vmm {
namespace {

// A record with every field set to a known value.
FaultRecord sample_record() {
  FaultRecord record;
  record.time = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600) +
                                                      std::chrono::nanoseconds(5));
  record.vm = "vm\"1";
  record.vmid = 7;
  record.vcpu = 2;
  record.ipa = Ipa(0xd0000010);
  record.write = true;
  record.size = 4;
  record.kind = "unbacked";
  record.resolution = "write-dropped";
  record.latency_ns = 812;
  return record;
}

// The JSON line has every field, in order, with the name escaped and the time in RFC 3339.
TEST(FaultLog, FormatsOneJsonLine) {
  EXPECT_EQ(format_fault_record(sample_record()),
            "{\"time\":\"2026-01-01T00:00:00.000000005Z\",\"vm\":\"vm\\\"1\",\"vmid\":7,"
            "\"vcpu\":2,\"ipa\":\"0xd0000010\",\"access\":\"write\",\"size\":4,"
            "\"kind\":\"unbacked\",\"resolution\":\"write-dropped\",\"latency_ns\":812}");
}

// Past the burst, faults are still counted but not all printed; the file gets one line each
// for the printed ones.
TEST(FaultLog, RateLimitCountsEverything) {
  char name[] = "/tmp/hvmm-fault-log-XXXXXX";
  close(mkstemp(name));
  {
    auto opened = open_log_file(name, "fault_log", LogOpenMode::kAppend);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    auto log = std::make_unique<FaultLog>(std::move(*opened));
    for (unsigned i = 0; i < FaultLog::kBurst + 50; ++i) {
      log->record(sample_record());
    }
    EXPECT_EQ(log->recorded(), FaultLog::kBurst + 50);
    EXPECT_GE(log->suppressed(), 40u);
    EXPECT_EQ(log->dropped(), 0u);
    EXPECT_NE(log->summary().find("not logged (rate limit)"), std::string::npos);
    // The counts by kind (of every fault source) end the line when given.
    const std::string with_kinds = log->summary("unbacked 3, missing 247");
    EXPECT_NE(with_kinds.find("(rate limit); counted by kind: unbacked 3, missing 247\n"),
              std::string::npos)
        << with_kinds;
    std::ifstream file(name);
    std::string line;
    uint64_t lines = 0;
    while (std::getline(file, line)) {
      ++lines;
      EXPECT_EQ(line, format_fault_record(sample_record()));
    }
    EXPECT_EQ(lines, log->recorded() - log->suppressed());
  }
  std::remove(name);
}

// A FIFO whose reader does not keep up fills: later lines are dropped and counted, the
// writer never blocks, every line that got through is whole, and the summary names the log.
TEST(FaultLog, FullFifoDropsAndCounts) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  UniqueFd reader(fds[0]);
  ASSERT_GT(::fcntl(fds[1], F_SETPIPE_SZ, 4096), 0);
  FaultLog log(LogFile{UniqueFd(fds[1]), LogFileKind::kFifo, "pipe", "fault_log"});
  for (unsigned i = 0; i < FaultLog::kBurst; ++i) {
    log.record(sample_record());
  }
  std::string received(1 << 20, '\0');
  ssize_t n = ::read(reader.get(), received.data(), received.size());
  ASSERT_GT(n, 0);
  received.resize(static_cast<size_t>(n));
  std::istringstream lines(received);
  std::string line;
  uint64_t whole = 0;
  while (std::getline(lines, line)) {
    EXPECT_EQ(line, format_fault_record(sample_record()));
    ++whole;
  }
  uint64_t printed = log.recorded() - log.suppressed();
  EXPECT_GT(log.dropped(), 0u);
  EXPECT_EQ(whole + log.dropped(), printed);
  EXPECT_NE(log.summary().find("dropped (fault log 'pipe' was full)"), std::string::npos)
      << log.summary();
}

// The sink sees every record, those the rate limit keeps out of the file included, with the
// enums set_outcome() set; removing it stops the calls.
TEST(FaultLog, SinkSeesEveryRecord) {
  auto opened = open_log_file("/dev/null", "--fault-log", LogOpenMode::kAppend);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  FaultLog log(std::move(*opened));
  std::vector<FaultRecord> seen;
  log.set_sink([&seen](const FaultRecord& record) { seen.push_back(record); });
  FaultRecord record = sample_record();
  record.set_outcome(FaultKind::kReclaimed, FaultResolution::kRestored);
  const unsigned total = FaultLog::kBurst * 2;
  for (unsigned i = 0; i < total; ++i) {
    record.ipa = Ipa(0x1000 * i);
    log.record(record);
  }
  EXPECT_GT(log.suppressed(), 0u) << "the rate limit must have kept some out of the file";
  ASSERT_EQ(seen.size(), total);
  for (unsigned i = 0; i < total; ++i) {
    EXPECT_EQ(seen[i].ipa, Ipa(0x1000 * i));
    EXPECT_EQ(seen[i].kind_value, FaultKind::kReclaimed);
    EXPECT_EQ(seen[i].resolution_value, FaultResolution::kRestored);
    EXPECT_STREQ(seen[i].kind, "reclaimed");
  }
  log.set_sink({});
  log.record(record);
  EXPECT_EQ(seen.size(), total);
  EXPECT_EQ(log.recorded(), total + 1);
}

}  // namespace
}  // namespace hvmm::vmm
