// ReclaimPolicy: how much the host takes back from one VM without its help, and how fast.
//
// Off unless asked for (`hvmm run --reclaim POLICY`). The syntax is comma-separated
// key=value pairs, every key optional:
//   target=64M | target=25%   RSS goal: reclaim coldest pages first until the VM's resident
//                             guest memory is at most this (bytes with K/M/G, or a share of
//                             RAM); absent: every cold page is reclaimed
//   period=1s                 epoch length (ms/s suffix), one dirty-log harvest per epoch
//   cold=120                  epochs without a write or refault before a page is a candidate
//   refault=N                 refault distance in epochs: a page refaulted within N epochs of
//                             its reclaim becomes active (default: cold)
//   active=N                  epochs an activated page is exempt from reclaim (default: 4*cold)
//   budget=0.2%               promotion-rate budget: refaults per minute as a share of the
//                             VM's footprint (resident and reclaimed pages it touched; not
//                             its young set, near empty in an idle guest); above it reclaim
//                             backs off; budget=off never backs off
//   rate=64M                  at most this many bytes reclaimed per second
//   codec=lz4 | codec=zstd    the pool's compressor
//   pool=32M                  the pool's memory cap (default: a quarter of guest RAM)
//   keep=75%                  payloads above this share of a page are not worth storing
//   dirty=log | dirty=ring    KVM dirty tracking
// Defaults follow software-defined far memory (ASPLOS'19): cold after 120 s, a budget of
// 0.2% of the working set per minute, payloads above ~3/4 of a page not stored.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "hvmm/base/result.h"
#include "hvmm/vmm/reclaim/dirty/dirty_source.h"
#include "hvmm/vmm/reclaim/pool/codec.h"

namespace hvmm::vmm {

// budget=off: no promotion rate is above it.
inline constexpr double kNoPromotionBudget = std::numeric_limits<double>::infinity();

struct ReclaimPolicy {
  std::optional<uint64_t> target_bytes;         // target=64M
  std::optional<double> target_fraction;        // target=25% (0 < f <= 1), of guest RAM
  std::chrono::milliseconds period{1000};       // period=
  uint32_t cold_epochs = 120;                   // cold=
  uint32_t refault_distance = 0;                // refault=; 0: cold_epochs
  uint32_t active_epochs = 0;                   // active=; 0: 4 * cold_epochs
  double promotion_budget = 0.002;              // budget=, per minute, of the footprint
  uint64_t max_rate = uint64_t{64} << 20;       // rate=, bytes per second
  Codec codec = kDefaultCodec;                  // codec=
  uint64_t pool_limit = 0;                      // pool=; 0: guest RAM / 4
  double keep_threshold = 0.75;                 // keep=, of a page
  DirtyTracking dirty = kDefaultDirtyTracking;  // dirty=

  // The RSS goal in bytes for a guest of `ram` bytes (nothing: reclaim every cold page).
  std::optional<uint64_t> target_for(uint64_t ram) const {
    if (target_bytes)
      return target_bytes;
    if (target_fraction)
      return static_cast<uint64_t>(*target_fraction * static_cast<double>(ram));
    return std::nullopt;
  }
  uint32_t effective_refault_distance() const {
    return refault_distance != 0 ? refault_distance : cold_epochs;
  }
  uint32_t effective_active_epochs() const {
    return active_epochs != 0 ? active_epochs : 4 * cold_epochs;
  }
  uint64_t effective_pool_limit(uint64_t ram) const {
    return pool_limit != 0 ? pool_limit : ram / 4;
  }
};

// Parse the --reclaim syntax above. Errors name the key and what was wrong with its value
// ("reclaim policy: cold=0: must be at least 1 epoch").
Result<ReclaimPolicy> parse_reclaim_policy(std::string_view text);

// The same over `base`: the keys `text` gives replace base's values, the others keep them
// (target= replaces either form of base's target). For a change to a running VM's policy
// that names only what changes.
Result<ReclaimPolicy> parse_reclaim_policy(std::string_view text, const ReclaimPolicy& base);

// Whether a running VM's policy `running` may become `wanted`: the pool's codec, its limit
// and keep threshold and the dirty tracking are fixed when the VM is built, so they must be
// equal. The error names the first key that differs and its value in force
// ("reclaim policy: codec=zstd: the pool's codec is fixed while the VM runs (it is lz4)").
Result<void> check_policy_change(const ReclaimPolicy& running, const ReclaimPolicy& wanted);

// The policy back in the same syntax, every key spelled out (for logs and --stats).
std::string format_reclaim_policy(const ReclaimPolicy& policy);

}  // namespace hvmm::vmm
