// HostPolicy's checks and defaults (settings.h).
#include "hvmm/daemon/server/policy/settings.h"

#include <cmath>

namespace hvmm::daemon::policy {
namespace {

Error invalid(const char* prefix, const char* field, const std::string& what) {
  return make_error(ErrorCode::kInvalidArgument, "{}{}: {}", prefix, field, what);
}

// A duration in ms: 0 (the default) or within [low, high].
Result<void> check_ms(const char* prefix, const char* field, uint32_t value, uint32_t low,
                      uint32_t high, uint32_t fallback) {
  if (value != 0 && (value < low || value > high)) {
    return invalid(
        prefix, field,
        fmt::format("{} ms is outside {}..{} ms (0: {} ms)", value, low, high, fallback));
  }
  return Ok();
}

}  // namespace

Result<void> check_host_policy(const hvmm::v1::HostPolicy& policy, const char* prefix) {
  const double pressure = policy.max_pressure_some_avg10();
  if (std::isnan(pressure) || pressure < 0 || pressure > 100) {
    return invalid(prefix, "max_pressure_some_avg10",
                   fmt::format("{} is not a percentage in 0..100 (0: not enforced)", pressure));
  }
  const double hysteresis = policy.hysteresis();
  if (std::isnan(hysteresis) || hysteresis < 0 || hysteresis > 1) {
    return invalid(prefix, "hysteresis",
                   fmt::format("{} is outside 0..1 (0: {})", hysteresis, kDefaultHysteresis));
  }
  HVMM_TRY(check_ms(prefix, "interval_ms", policy.interval_ms(), kMinIntervalMs, kMaxIntervalMs,
                    kDefaultIntervalMs));
  HVMM_TRY(check_ms(prefix, "balloon_timeout_ms", policy.balloon_timeout_ms(), kMinBalloonTimeoutMs,
                    kMaxBalloonTimeoutMs, kDefaultBalloonTimeoutMs));
  if (policy.step_bytes() != 0 && policy.step_bytes() < kMinStepBytes) {
    return invalid(prefix, "step_bytes",
                   fmt::format("{} is below one page ({} bytes; 0: {} bytes)", policy.step_bytes(),
                               kMinStepBytes, kDefaultStepBytes));
  }
  if (policy.hold_rounds() > kMaxHoldRounds) {
    return invalid(prefix, "hold_rounds",
                   fmt::format("{} is above {} (0: {})", policy.hold_rounds(), kMaxHoldRounds,
                               kDefaultHoldRounds));
  }
  return Ok();
}

hvmm::v1::HostPolicy with_defaults(hvmm::v1::HostPolicy policy) {
  if (policy.hysteresis() == 0) {
    policy.set_hysteresis(kDefaultHysteresis);
  }
  if (policy.interval_ms() == 0) {
    policy.set_interval_ms(kDefaultIntervalMs);
  }
  policy.set_step_bytes(policy.step_bytes() == 0 ? kDefaultStepBytes
                                                 : policy.step_bytes() & ~(kMinStepBytes - 1));
  if (policy.hold_rounds() == 0) {
    policy.set_hold_rounds(kDefaultHoldRounds);
  }
  if (policy.balloon_timeout_ms() == 0) {
    policy.set_balloon_timeout_ms(kDefaultBalloonTimeoutMs);
  }
  return policy;
}

bool has_target(const hvmm::v1::HostPolicy& policy) {
  return policy.min_available_bytes() != 0 || policy.max_vm_rss_bytes() != 0 ||
         policy.max_pressure_some_avg10() != 0;
}

}  // namespace hvmm::daemon::policy
