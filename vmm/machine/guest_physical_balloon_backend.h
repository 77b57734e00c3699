// GuestPhysicalBalloonBackend: the Machine's BalloonBackend, on the VM's page states.
//
// Every balloon operation is a page-state change of the stage-2 map (GuestPhysical), which
// realizes it on the memfd, so the map, the memfd's allocated blocks and the notifier
// stream stay in agreement:
// - inflate: set_backing_runs(runs, kBallooned, kBalloon): the pages are punched out of the
//   memfd (the host RSS drops) and VMM accesses to them are refused;
// - deflate: set_backing_runs(runs, kResident, kBalloon): nothing is filled, the guest's next
//   touch of a page zero-fills it;
// - report (free page reporting): set_backing_runs(runs, kReported, kFreePageReport); pages
//   the map already says are reported were reused behind its back, and are punched again.
// Each run fails alone; a batch with failed runs is counted, logged (the first few lines,
// then only counted) and returned as an error so the device counts it too, but the device
// still returns the guest's buffer. The time spent in the map change and its punches (the
// VMM's part of an inflate) is measured per operation, and an inflate also counts how much
// of what it took held host memory before (a touched page, not a never-touched hole).
// Thread-safety: the device calls it under its transport's lock; stats() may be called from
// any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "hvmm/vmm/devices/balloon/balloon_backend.h"
#include "hvmm/vmm/memory/guest_physical.h"

namespace hvmm::vmm {

// BalloonBackendStats: what the backend did, in pages, runs and nanoseconds.
struct BalloonBackendStats {
  uint64_t inflate_batches = 0;
  uint64_t deflate_batches = 0;
  uint64_t report_batches = 0;
  uint64_t runs = 0;             // runs asked for, every operation
  uint64_t failed_runs = 0;      // runs the map refused or could not realize
  uint64_t failed_batches = 0;   // batches with at least one failed run
  uint64_t ballooned_pages = 0;  // pages that became ballooned (inflate)
  uint64_t deflated_pages = 0;   // pages that became resident again (deflate)
  uint64_t reported_pages = 0;   // pages that became reported (free page reporting)
  // Pages reported again while the map still said reported: reused by the guest without a
  // fault the map saw, so punched again (see report()).
  uint64_t rereported_pages = 0;
  // Bytes of inflated runs that were allocated in the memfd just before the inflate: guest
  // memory that had been touched and that the balloon gave back to the host.
  uint64_t inflated_allocated_bytes = 0;
  uint64_t inflate_ns = 0;  // time inside the map change and its punches, inflate
  uint64_t deflate_ns = 0;
  uint64_t report_ns = 0;
};

class GuestPhysicalBalloonBackend final : public BalloonBackend {
 public:
  // Change pages of `physical`; `log` gets one line per failed batch (the first few).
  GuestPhysicalBalloonBackend(GuestPhysical& physical, std::function<void(const std::string&)> log);

  Result<void> inflate(std::span<const IpaRange> runs) override;
  Result<void> deflate(std::span<const IpaRange> runs) override;
  Result<void> report(std::span<const IpaRange> runs) override;

  BalloonBackendStats stats() const;
  // Keep every inflated run (for a benchmark that replays them); off by default, since the
  // record grows with every inflate.
  void record_inflated_runs(bool on);
  std::vector<IpaRange> inflated_runs() const;

 private:
  // Which operation a batch is, for its counters and messages.
  enum class Operation { kInflate, kDeflate, kReport };
  static const char* name_of(Operation operation);
  Result<void> change(std::span<const IpaRange> runs, Operation operation);
  Result<void> account(Operation operation, const BackingBatch& batch, uint64_t ns);
  uint64_t allocated_bytes_of(std::span<const IpaRange> runs) const;

  GuestPhysical& physical_;
  std::function<void(const std::string&)> log_;
  mutable std::mutex lock_;  // guards the counters and the record
  BalloonBackendStats stats_;
  bool recording_ = false;
  std::vector<IpaRange> inflated_runs_;
};

}  // namespace hvmm::vmm
