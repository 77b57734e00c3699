// HostPolicy's checks and defaults (policy.proto says what each field means).
#pragma once

#include <cstdint>

#include "hvmm/base/result.h"
#include "hvmm/v1/policy.pb.h"

namespace hvmm::daemon::policy {

inline constexpr double kDefaultHysteresis = 0.1;
inline constexpr uint32_t kDefaultIntervalMs = 1000;
inline constexpr uint32_t kMinIntervalMs = 100;
inline constexpr uint32_t kMaxIntervalMs = 3600 * 1000;
inline constexpr uint64_t kDefaultStepBytes = uint64_t{64} << 20;
inline constexpr uint64_t kMinStepBytes = 4096;
inline constexpr uint32_t kDefaultHoldRounds = 5;
inline constexpr uint32_t kMaxHoldRounds = 100000;
inline constexpr uint32_t kDefaultBalloonTimeoutMs = 5000;
inline constexpr uint32_t kMinBalloonTimeoutMs = 100;
inline constexpr uint32_t kMaxBalloonTimeoutMs = 3600 * 1000;

// Check every field; the error is INVALID_ARGUMENT and starts with `prefix` and the field
// ("policy.hysteresis: 1.5 is outside 0..1 (0: 0.1)"). 0 (the default) is always accepted.
Result<void> check_host_policy(const hvmm::v1::HostPolicy& policy, const char* prefix = "policy.");

// The policy with every 0 that means a default replaced by it (step rounded down to pages).
hvmm::v1::HostPolicy with_defaults(hvmm::v1::HostPolicy policy);

// Whether any target is enforced (a policy with none never takes).
bool has_target(const hvmm::v1::HostPolicy& policy);

}  // namespace hvmm::daemon::policy
