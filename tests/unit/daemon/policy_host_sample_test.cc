// The host policy's view of the host (daemon/server/policy/host_sample.h, vm_view.h):
// /proc/meminfo and /proc/pressure/memory as the kernel writes them, and a VM's idle estimate.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "hvmm/daemon/server/policy/host_sample.h"
#include "hvmm/daemon/server/policy/vm_view.h"

namespace hvmm::daemon::policy {
namespace {

constexpr const char* kMeminfo =
    "MemTotal:       24600000 kB\n"
    "MemFree:         1000000 kB\n"
    "MemAvailable:    8000000 kB\n"
    "Buffers:           12345 kB\n";
constexpr const char* kPressure =
    "some avg10=1.50 avg60=0.80 avg300=0.10 total=123456\n"
    "full avg10=0.25 avg60=0.10 avg300=0.00 total=2345\n";

TEST(PolicyHostSample, ParsesMeminfoAndPressure) {
  auto meminfo = parse_meminfo(kMeminfo);
  ASSERT_TRUE(meminfo.ok()) << meminfo.error().message;
  EXPECT_EQ(meminfo->total_bytes, uint64_t{24600000} * 1024);
  EXPECT_EQ(meminfo->available_bytes, uint64_t{8000000} * 1024);
  auto pressure = parse_pressure(kPressure);
  ASSERT_TRUE(pressure.ok());
  EXPECT_DOUBLE_EQ(pressure->some_avg10, 1.5);
  EXPECT_DOUBLE_EQ(pressure->full_avg10, 0.25);
}

TEST(PolicyHostSample, RefusesWhatIsNotThere) {
  EXPECT_FALSE(parse_meminfo("MemTotal: 100 kB\n").ok());
  EXPECT_FALSE(parse_meminfo("MemTotal: 100 kB\nMemAvailable: x kB\n").ok());
  EXPECT_FALSE(parse_meminfo("MemAvailableX: 1 kB\nMemTotal: 1 kB\n").ok());
  EXPECT_FALSE(parse_pressure("full avg10=1.00\n").ok());
  EXPECT_FALSE(parse_pressure("some avg10=101.0\n").ok());
}

TEST(PolicyHostSample, ReadsFilesAndToleratesNoPressure) {
  std::string dir = ::testing::TempDir();
  std::string meminfo = dir + "/policy_meminfo";
  std::string pressure = dir + "/policy_pressure";
  std::ofstream(meminfo) << kMeminfo;
  std::ofstream(pressure) << kPressure;
  auto sample = read_host_sample(meminfo, pressure);
  ASSERT_TRUE(sample.ok()) << sample.error().message;
  EXPECT_TRUE(sample->pressure_available);
  EXPECT_GT(sample->time_unix_ns, 0u);
  auto without = read_host_sample(meminfo, dir + "/no-such-pressure");
  ASSERT_TRUE(without.ok());
  EXPECT_FALSE(without->pressure_available);
  auto missing = read_host_sample(dir + "/no-such-meminfo", pressure);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("no-such-meminfo"), std::string::npos);
  std::remove(meminfo.c_str());
  std::remove(pressure.c_str());
}

// The idle estimate: the working set with reclaim, the guest's stats with a balloon, else none.
TEST(PolicyVmView, IdleEstimateBySource) {
  hvmm::v1::VmSpec spec;
  spec.set_memory_bytes(256 << 20);
  hvmm::v1::MemoryStats stats;
  stats.set_memory_bytes(256 << 20);
  EXPECT_EQ(make_vm_view("a", spec, stats).idle_source, IdleSource::kNone);
  EXPECT_EQ(make_vm_view("a", spec, stats).idle_bytes, 0u);
  EXPECT_EQ(make_vm_view("a", spec, stats).floor_bytes, uint64_t{64} << 20);
  stats.mutable_balloon()->set_present(true);
  (*stats.mutable_balloon()->mutable_guest_stats())["free-memory"] = 10 << 20;
  EXPECT_EQ(make_vm_view("a", spec, stats).idle_bytes, uint64_t{10} << 20);
  (*stats.mutable_balloon()->mutable_guest_stats())["available-memory"] = 30 << 20;
  auto view = make_vm_view("a", spec, stats);
  EXPECT_EQ(view.idle_source, IdleSource::kGuestStats);
  EXPECT_EQ(view.idle_bytes, uint64_t{30} << 20);
  stats.mutable_reclaim()->set_enabled(true);
  stats.mutable_host()->set_memfd_allocated_bytes(200 << 20);
  stats.mutable_working_set()->set_estimate_bytes(50 << 20);
  view = make_vm_view("a", spec, stats);
  EXPECT_EQ(view.idle_source, IdleSource::kWorkingSet);
  EXPECT_EQ(view.idle_bytes, uint64_t{150} << 20);
  EXPECT_EQ(view.working_set_bytes, uint64_t{50} << 20);
  spec.mutable_policy()->set_floor_bytes(100 << 20);
  EXPECT_EQ(make_vm_view("a", spec, stats).floor_bytes, uint64_t{100} << 20);
}

}  // namespace
}  // namespace hvmm::daemon::policy
