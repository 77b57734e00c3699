// The checks the daemon makes of Memory, Tlb, Notifier, Fault and Guest requests before it
// forwards them to a VM process: what can be known without the VM process (alignment,
// overflow, bounds, enum values, what the VM was created with). The VM process checks again
// what only it knows (the IPA space, its devices' state).
//
// Every error is INVALID_ARGUMENT, or FAILED_PRECONDITION when the VM was created without
// what the request needs, and its message starts with the request's field ("range: ...",
// "target_bytes: ...", "stage1.va: ...").
#pragma once

#include <cstdint>
#include <string_view>

#include "hvmm/base/result.h"
#include "hvmm/v1/service.pb.h"

namespace hvmm::daemon {

inline constexpr uint64_t kPageSize = 4096;
inline constexpr uint32_t kMaxDumpPageSize = 10000;
inline constexpr uint32_t kMinStreamBuffer = 16;
inline constexpr uint32_t kMaxStreamBuffer = 65536;
inline constexpr uint32_t kDefaultStreamBuffer = 4096;
inline constexpr uint32_t kMaxWaitMs = 600000;  // ten minutes
inline constexpr size_t kMaxPageTokenLength = 256;

// What the daemon knows of a VM for these checks (from its VmSpec).
struct VmFacts {
  std::string name;
  uint64_t memory_bytes = 0;
  bool balloon = true;
  bool control_channel = true;
  bool reclaim = false;
};
VmFacts vm_facts(const std::string& name, const hvmm::v1::VmSpec& spec);

// Whether a range may be left unset or empty (meaning "all of it").
enum class RangeRule { kRequired, kOptional };

// `range` page aligned, not overflowing, and not empty unless `rule` allows it.
Result<void> check_ipa_range(std::string_view field, const hvmm::v1::IpaRange& range,
                             RangeRule rule);

// A stream's buffer size: 0 (the default) or 16..65536.
Result<void> check_stream_buffer(std::string_view field, uint32_t buffer);
// The buffer size a stream gets for `buffer` (0: the default).
uint32_t stream_buffer(uint32_t buffer);

Result<void> check_request(const hvmm::v1::SetBalloonTargetRequest& request, const VmFacts& vm);
Result<void> check_request(const hvmm::v1::WatchBalloonRequest& request, const VmFacts& vm);
Result<void> check_request(const hvmm::v1::ReclaimRequest& request, const VmFacts& vm);
Result<void> check_request(const hvmm::v1::DumpStage2Request& request, const VmFacts& vm);
Result<void> check_request(const hvmm::v1::GetDirtyLogRequest& request, const VmFacts& vm);
Result<void> check_request(const hvmm::v1::TlbShootdownRequest& request, const VmFacts& vm);
Result<void> check_request(const hvmm::v1::WatchNotifierRequest& request, const VmFacts& vm);
Result<void> check_request(const hvmm::v1::AgeRequest& request, const VmFacts& vm);
Result<void> check_request(const hvmm::v1::InvalidateRequest& request, const VmFacts& vm);
Result<void> check_request(const hvmm::v1::StartWorkloadRequest& request, const VmFacts& vm);
Result<void> check_request(const hvmm::v1::WorkloadRequest& request, const VmFacts& vm);
Result<void> check_request(const hvmm::v1::ProbeRequest& request, const VmFacts& vm);
// Requests with nothing to check beyond the name.
Result<void> check_request(const hvmm::v1::GetMemoryStatsRequest& request, const VmFacts& vm);
Result<void> check_request(const hvmm::v1::ListSubscriptionsRequest& request, const VmFacts& vm);

// WatchFaults (no VM: `name` may be empty for all of them).
Result<void> check_watch_faults(const hvmm::v1::WatchFaultsRequest& request);

}  // namespace hvmm::daemon
