// The `warm-pool` setting: which pre-built VM processes hvmmd keeps ready.
//
// "256M:2,1G:1" keeps two prepared VM processes of 256 MiB and one of 1 GiB (1 vCPU each);
// "256M/2:2" two of 256 MiB with 2 vCPUs. Sizes take K/M/G suffixes and must be valid VM
// sizes (2M..256G, whole pages), vCPUs 1..255, counts 1..64; a size/vCPU pair appears once.
// An empty text is no pool. Errors name the key ("warm-pool: ...") and quote the entry.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "hvmm/base/result.h"

namespace hvmm::daemon {

struct WarmPoolSize {
  uint64_t memory_bytes = 0;
  unsigned vcpus = 1;
  unsigned count = 0;  // how many the pool keeps ready
};

// The most prepared processes of one size (each holds its VM's page tables and a process).
inline constexpr unsigned kMaxWarmPoolCount = 64;

// Parse `text` ("SIZE[/VCPUS]:COUNT,...").
Result<std::vector<WarmPoolSize>> parse_warm_pool_sizes(std::string_view text);

}  // namespace hvmm::daemon
