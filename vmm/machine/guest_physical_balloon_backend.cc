// The Machine's balloon backend: inflate, deflate and report as page-state changes of the map.
#include "hvmm/vmm/machine/guest_physical_balloon_backend.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

namespace hvmm::vmm {
namespace {

// Failed batches logged before the backend only counts them.
constexpr uint64_t kLoggedFailures = 8;

// Bytes of [range) allocated in the memfd `fd` (SEEK_DATA / SEEK_HOLE); 0 when they fail.
uint64_t allocated_in(int fd, HostRange range) {
  uint64_t bytes = 0;
  const auto end = static_cast<off_t>(range.end().value());
  for (off_t at = static_cast<off_t>(range.start.value()); at < end;) {
    const off_t data = ::lseek(fd, at, SEEK_DATA);
    if (data < 0 || data >= end) {
      break;
    }
    const off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) {
      break;
    }
    bytes += static_cast<uint64_t>(std::min(hole, end) - data);
    at = hole;
  }
  return bytes;
}

// Nanoseconds since `start`.
uint64_t elapsed_ns(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
}

// Pages in `runs`.
uint64_t pages_of(std::span<const IpaRange> runs) {
  uint64_t pages = 0;
  for (const IpaRange& run : runs) {
    pages += run.size / kPageSize;
  }
  return pages;
}

}  // namespace

// Keep the guest-physical space and the log sink.
GuestPhysicalBalloonBackend::GuestPhysicalBalloonBackend(
    GuestPhysical& physical, std::function<void(const std::string&)> log)
    : physical_(physical), log_(std::move(log)) {}

// Note what held host memory (outside the timed part), then balloon the runs.
Result<void> GuestPhysicalBalloonBackend::inflate(std::span<const IpaRange> runs) {
  const uint64_t allocated = allocated_bytes_of(runs);
  {
    std::lock_guard guard(lock_);
    stats_.inflated_allocated_bytes += allocated;
    if (recording_) {
      inflated_runs_.insert(inflated_runs_.end(), runs.begin(), runs.end());
    }
  }
  return change(runs, Operation::kInflate);
}

// Resident again, unfilled: the guest's next touch zero-fills each page.
Result<void> GuestPhysicalBalloonBackend::deflate(std::span<const IpaRange> runs) {
  return change(runs, Operation::kDeflate);
}

// Reported pages are punched like ballooned ones but stay the guest's. A driver reports a
// page again only after it reused it (it is marked reported until allocated), so a page the
// map still says is reported was touched without the map seeing it (no userfaultfd fault
// made it resident) and may hold memory again: such a batch goes resident, then reported,
// so that every page of it is punched.
Result<void> GuestPhysicalBalloonBackend::report(std::span<const IpaRange> runs) {
  const auto start = std::chrono::steady_clock::now();
  BackingBatch batch = physical_.set_backing_runs(runs, stage2::Backing::kReported,
                                                  stage2::ChangeReason::kFreePageReport);
  const uint64_t already = pages_of(runs) - std::min(pages_of(runs), batch.changed.total());
  if (already != 0 && batch.failed_runs == 0) {
    BackingBatch reset = physical_.set_backing_runs(runs, stage2::Backing::kResident,
                                                    stage2::ChangeReason::kFreePageReport);
    batch = physical_.set_backing_runs(runs, stage2::Backing::kReported,
                                       stage2::ChangeReason::kFreePageReport);
    batch.failed_runs += reset.failed_runs;
    if (!batch.first_error) {
      batch.first_error = reset.first_error;
    }
    std::lock_guard guard(lock_);
    stats_.rereported_pages += already;
  }
  return account(Operation::kReport, batch, elapsed_ns(start));
}

// One batch of map changes, timed.
Result<void> GuestPhysicalBalloonBackend::change(std::span<const IpaRange> runs,
                                                 Operation operation) {
  stage2::Backing backing = stage2::Backing::kResident;
  stage2::ChangeReason reason = stage2::ChangeReason::kBalloon;
  if (operation == Operation::kInflate) {
    backing = stage2::Backing::kBallooned;
  } else if (operation == Operation::kReport) {
    backing = stage2::Backing::kReported;
    reason = stage2::ChangeReason::kFreePageReport;
  }
  const auto start = std::chrono::steady_clock::now();
  BackingBatch batch = physical_.set_backing_runs(runs, backing, reason);
  return account(operation, batch, elapsed_ns(start));
}

// Count the batch; a batch with failed runs is logged (the first few) and is an error.
Result<void> GuestPhysicalBalloonBackend::account(Operation operation, const BackingBatch& batch,
                                                  uint64_t ns) {
  std::lock_guard guard(lock_);
  stats_.runs += batch.runs;
  stats_.failed_runs += batch.failed_runs;
  const uint64_t changed = batch.changed.total();
  switch (operation) {
    case Operation::kInflate:
      ++stats_.inflate_batches;
      stats_.ballooned_pages += changed;
      stats_.inflate_ns += ns;
      break;
    case Operation::kDeflate:
      ++stats_.deflate_batches;
      stats_.deflated_pages += changed;
      stats_.deflate_ns += ns;
      break;
    case Operation::kReport:
      ++stats_.report_batches;
      stats_.reported_pages += changed;
      stats_.report_ns += ns;
      break;
  }
  if (batch.failed_runs == 0) {
    return Ok();
  }
  ++stats_.failed_batches;
  const char* what = name_of(operation);
  const std::string first = batch.first_error ? batch.first_error->message : "unknown error";
  const ErrorCode code = batch.first_error ? batch.first_error->code : ErrorCode::kInternal;
  if (log_ && stats_.failed_batches <= kLoggedFailures) {
    log_(fmt::format(
        "virtio-balloon: {}: {} of {} runs failed, first: {}{}", what, batch.failed_runs,
        batch.runs, first,
        stats_.failed_batches == kLoggedFailures ? " (further failures only counted)" : ""));
  }
  return make_error(code, "{}: {} of {} runs failed, first: {}", what, batch.failed_runs,
                    batch.runs, first);
}

// The operation's name in log lines and errors.
const char* GuestPhysicalBalloonBackend::name_of(Operation operation) {
  switch (operation) {
    case Operation::kInflate:
      return "inflate";
    case Operation::kDeflate:
      return "deflate";
    case Operation::kReport:
      return "free page report";
  }
  return "?";
}

// Bytes of `runs` allocated in the memfd, through the RAM regions' host offsets.
uint64_t GuestPhysicalBalloonBackend::allocated_bytes_of(std::span<const IpaRange> runs) const {
  uint64_t bytes = 0;
  for (const IpaRange& run : runs) {
    for (const RamRegion& region : physical_.ram()) {
      const Ipa start = std::max(run.start, region.range.start);
      const Ipa end = std::min(run.end(), region.range.end());
      if (start < end) {
        const HostOffset offset = region.offset + (start - region.range.start);
        bytes += allocated_in(physical_.memory().fd(), HostRange{offset, end - start});
      }
    }
  }
  return bytes;
}

// A copy of the counters, under their lock.
BalloonBackendStats GuestPhysicalBalloonBackend::stats() const {
  std::lock_guard guard(lock_);
  return stats_;
}

// Start or stop keeping inflated runs (what was kept stays).
void GuestPhysicalBalloonBackend::record_inflated_runs(bool on) {
  std::lock_guard guard(lock_);
  recording_ = on;
}

// The runs kept so far, in the order they were inflated.
std::vector<IpaRange> GuestPhysicalBalloonBackend::inflated_runs() const {
  std::lock_guard guard(lock_);
  return inflated_runs_;
}

}  // namespace hvmm::vmm
