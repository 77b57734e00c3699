// Helpers of the reclaim integration tests and benchmark: what the host expects of the
// guest's mix workload (hvmm/base/pattern_mix.h: its checksum and how many pages of each
// kind), this process's VmRSS, waiting until the reclaim engine has settled, and the
// figures printed for the record.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "hvmm/base/pattern_mix.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/host/process_memory.h"
#include "hvmm/vmm/machine/machine.h"

namespace hvmm::vmm::testing {

// The checksum the guest reports for `pages` pages of the mix of `seed`: every word of the
// header's mix folded in page order (FNV-1a over 64-bit words, as the pattern check).
inline uint64_t mix_checksum(uint64_t seed, uint64_t pages) {
  uint64_t checksum = 0xcbf29ce484222325ull;
  for (uint64_t page = 0; page < pages; ++page)
    for (uint64_t i = 0; i < pattern::kPageWords; ++i)
      checksum = (checksum ^ pattern::mix_word(seed, page, i)) * 0x100000001b3ull;
  return checksum;
}

// How many pages of each kind the mix of `seed` has in its first `pages` pages.
struct MixCensus {
  uint64_t zero = 0;
  uint64_t text = 0;
  uint64_t random = 0;  // incompressible: the pool keeps them resident
  uint64_t compressible() const { return zero + text; }
};

inline MixCensus mix_census(uint64_t seed, uint64_t pages) {
  MixCensus census;
  for (uint64_t page = 0; page < pages; ++page) {
    switch (pattern::mix_kind(pattern::page_base(seed, page))) {
      case pattern::MixKind::kZero:
        ++census.zero;
        break;
      case pattern::MixKind::kText:
        ++census.text;
        break;
      case pattern::MixKind::kRandom:
        ++census.random;
        break;
    }
  }
  return census;
}

// VmRSS of this process in bytes: guest RAM the host holds (RssShmem) plus the pool and
// everything else the VMM allocated (0 when /proc cannot be read: a test then fails on it).
inline uint64_t vm_rss() {
  auto memory = read_process_memory();
  return memory ? memory->rss : 0;
}

// Pages reclaimed_now may move by while the engine counts as settled: an idle guest kernel
// still touches a few pages now and then (its timer, the control channel), which go cold,
// leave and come back again.
inline constexpr uint64_t kSettledJitterPages = 256;

// Wait until the engine has settled: at least one page reclaimed, and over `quiet_epochs`
// epochs in a row reclaimed_now within kSettledJitterPages of where it stood (nothing more
// goes, nothing comes back, but the idle kernel's own few pages) and no epoch backed off (a
// backed-off engine is stalled by its promotion budget, not done). The figures then, or an
// error at `deadline` saying how far it got.
inline Result<ReclaimFigures> wait_for_reclaim_to_settle(
    const Machine& machine, uint64_t quiet_epochs, std::chrono::steady_clock::time_point deadline) {
  std::optional<ReclaimFigures> last;
  std::optional<ReclaimFigures> since;  // where the quiet stretch began
  while (std::chrono::steady_clock::now() < deadline) {
    std::optional<ReclaimFigures> now = machine.reclaim_figures();
    if (!now)
      return make_error(ErrorCode::kFailedPrecondition, "the machine runs without reclaim");
    const uint64_t was = since ? since->stats.reclaimed_now : 0;
    const uint64_t moved = now->stats.reclaimed_now > was ? now->stats.reclaimed_now - was
                                                          : was - now->stats.reclaimed_now;
    if (!since || moved > kSettledJitterPages || now->stats.backoffs != since->stats.backoffs)
      since = now;
    last = now;
    if (now->stats.reclaimed_now > 0 && now->stats.epochs >= since->stats.epochs + quiet_epochs)
      return *now;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return make_error(ErrorCode::kUnavailable,
                    "reclaim did not settle: {} epochs ({} backed off), {} pages reclaimed now, "
                    "{} in all",
                    last ? last->stats.epochs : 0, last ? last->stats.backoffs : 0,
                    last ? last->stats.reclaimed_now : 0, last ? last->stats.reclaimed_pages : 0);
}

// One line of the engine's and the pool's figures, for the test output.
inline std::string describe(const ReclaimFigures& f) {
  const ReclaimStats& s = f.stats;
  const ReclaimStoreStats& p = f.pool;
  return fmt::format(
      "epochs {}, reclaimed {} (now {}), aborted {}, incompressible {}, full {}, refaults {} "
      "(activated {}), backoffs {}, errors {}; pool {}: {} entries ({} compressed, {} zero, {} "
      "same-filled), payload {} B, pool {} B, ratio {:.2f}, fragmentation {:.3f}; refault "
      "latency mean {} ns, p99 <= {} ns ({} samples)",
      s.epochs, s.reclaimed_pages, s.reclaimed_now, s.aborted_pages, s.incompressible_pages,
      s.full_pages, s.refaults, s.refaults_activated, s.backoffs, s.errors, p.codec, p.entries,
      p.compressed_pages, p.zero_pages, p.same_filled_pages, p.payload_bytes, p.pool_bytes,
      p.compression_ratio(), p.fragmentation(), s.refault_latency.mean_ns(),
      s.refault_latency.quantile_upper_ns(0.99), s.refault_latency.samples);
}

}  // namespace hvmm::vmm::testing
