// Tests of the stage-2 fault log: the exact JSON line and the rate limit's accounting.
#include "hvmm/vmm/fault_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

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
    auto log = FaultLog::open(name);
    ASSERT_TRUE(log.ok());
    for (unsigned i = 0; i < FaultLog::kBurst + 50; ++i) {
      (*log)->record(sample_record());
    }
    EXPECT_EQ((*log)->recorded(), FaultLog::kBurst + 50);
    EXPECT_GE((*log)->suppressed(), 40u);
    std::ifstream file(name);
    std::string line;
    uint64_t lines = 0;
    while (std::getline(file, line)) {
      ++lines;
      EXPECT_EQ(line, format_fault_record(sample_record()));
    }
    EXPECT_EQ(lines, (*log)->recorded() - (*log)->suppressed());
  }
  std::remove(name);
}

// An unwritable path is refused naming the option.
TEST(FaultLog, UnwritablePathRefused) {
  auto log = FaultLog::open("/nonexistent/dir/faults.log");
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.error().message.find("--fault-log"), std::string::npos);
}

}  // namespace
}  // namespace hvmm::vmm
