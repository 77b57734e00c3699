// HostSample: what one round of the host policy sees of the host.
//
// MemTotal and MemAvailable come from /proc/meminfo, the "some" and "full" avg10 of memory
// stalls from /proc/pressure/memory (PSI). The paths are given (hvmmd's host-meminfo and
// host-pressure keys) so tests can feed figures. A missing or unreadable pressure file is not
// an error: pressure_available is false and the pressure target cannot be judged (it counts
// as met). A meminfo without MemAvailable is an error: no target could be judged without it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "hvmm/base/result.h"

namespace hvmm::daemon::policy {

struct HostSample {
  uint64_t time_unix_ns = 0;
  uint64_t mem_total_bytes = 0;
  uint64_t mem_available_bytes = 0;
  uint64_t vm_rss_bytes = 0;         // every VM process and warm-pool process
  uint64_t warm_pool_rss_bytes = 0;  // the warm-pool part of vm_rss_bytes
  double pressure_some_avg10 = 0;    // percent
  double pressure_full_avg10 = 0;
  bool pressure_available = false;
};

struct Meminfo {
  uint64_t total_bytes = 0;
  uint64_t available_bytes = 0;
};

struct Pressure {
  double some_avg10 = 0;
  double full_avg10 = 0;
};

// Parse /proc/meminfo's text: MemTotal and MemAvailable ("MemAvailable:  123 kB").
Result<Meminfo> parse_meminfo(std::string_view text);

// Parse /proc/pressure/memory's text: the avg10 of its "some" and "full" lines.
Result<Pressure> parse_pressure(std::string_view text);

// Read both files into a sample (VM RSS left 0: the caller adds it).
Result<HostSample> read_host_sample(const std::string& meminfo_path,
                                    const std::string& pressure_path);

}  // namespace hvmm::daemon::policy
