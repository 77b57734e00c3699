// GuestMemoryBalloonBackend: the Machine's BalloonBackend, for now directly on the memfd.
//
// TEMPORARY: it releases inflated and reported runs with GuestMemory::release() of the host
// offsets the RAM layout gives (a hole punched in the memfd: the host RSS drops, and the
// page reads as zero when the guest touches it again), and does nothing on deflate (a
// released page already comes back zero-filled). It bypasses the stage-2 map: the map still
// says "resident" and no notifier hears of the change. Once page states are realized by
// GuestPhysical::set_backing(run, Backing, reason), this class calls that instead (ballooned
// for inflate, resident for deflate, reported for report) and the map stays the truth.
#pragma once

#include <cstdint>
#include <span>

#include "hvmm/vmm/devices/balloon/balloon_backend.h"
#include "hvmm/vmm/memory/guest_physical.h"

namespace hvmm::vmm {

class GuestMemoryBalloonBackend final : public BalloonBackend {
 public:
  explicit GuestMemoryBalloonBackend(GuestPhysical& physical) : physical_(physical) {}

  Result<void> inflate(std::span<const IpaRange> runs) override { return release(runs); }
  Result<void> deflate(std::span<const IpaRange> runs) override;
  Result<void> report(std::span<const IpaRange> runs) override { return release(runs); }

  // Bytes released so far.
  uint64_t released_bytes() const { return released_; }

 private:
  Result<void> release(std::span<const IpaRange> runs);

  GuestPhysical& physical_;
  uint64_t released_ = 0;
};

}  // namespace hvmm::vmm
