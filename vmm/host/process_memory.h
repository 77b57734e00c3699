// ProcessMemory: the host memory figures of a process, read from /proc/<pid>/status.
//
// Guest RAM is a memfd mapped shared, so what a guest touches shows up in RssShmem (and in
// VmRSS, which is RssAnon + RssFile + RssShmem); VmHWM is the peak of VmRSS. The kernel keeps
// these counters per mm and updates them lazily (per-CPU batches of up to 64 pages, see
// mm/memory.c's SPLIT_RSS_COUNTING on older kernels), so they are exact to a few hundred KiB,
// which is what the balloon and reclaim figures need.
#pragma once

#include <sys/types.h>
#include <cstdint>
#include <string_view>

#include "hvmm/base/result.h"

namespace hvmm::vmm {

// ProcessMemory holds the figures in bytes.
struct ProcessMemory {
  uint64_t rss = 0;        // VmRSS
  uint64_t rss_peak = 0;   // VmHWM
  uint64_t rss_anon = 0;   // RssAnon
  uint64_t rss_file = 0;   // RssFile
  uint64_t rss_shmem = 0;  // RssShmem: the guest RAM the host really holds
};

// Parse the text of a /proc/<pid>/status file; fields that are missing are an error.
Result<ProcessMemory> parse_process_status(std::string_view status);
// Read /proc/<pid>/status (0: the calling process).
Result<ProcessMemory> read_process_memory(pid_t pid = 0);

}  // namespace hvmm::vmm
