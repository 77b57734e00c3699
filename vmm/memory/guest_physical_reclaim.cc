// GuestPhysical's side of reclaim: the window's candidates, its commit under the map lock,
// and the ReclaimedPages the fault handler loads refaults from.
//
// Lock order: the map lock, then the ReclaimWindow's mutex. The fault handler's WP path and
// VMM accesses take only the window's mutex, so none of them waits for the map lock while a
// commit holds it; a commit waits for nothing but that mutex.
#include <algorithm>
#include <mutex>

#include "hvmm/vmm/memory/guest_physical.h"

namespace hvmm::vmm {
namespace {

using stage2::Backing;

// The runs of consecutive pages in `pages` (sorted, page aligned).
std::vector<IpaRange> runs_of(const std::vector<Ipa>& pages) {
  std::vector<IpaRange> runs;
  for (Ipa page : pages) {
    if (!runs.empty() && runs.back().end() == page) {
      runs.back().size += kPageSize;
    } else {
      runs.push_back(IpaRange{page, kPageSize});
    }
  }
  return runs;
}

// Whether sorted `pages` holds `page`.
bool holds(const std::vector<Ipa>& pages, Ipa page) {
  return std::binary_search(pages.begin(), pages.end(), page);
}

}  // namespace

// The attached store's entry (none attached: there can be no reclaimed page to load).
Result<void> GuestPhysical::load(Ipa page, std::span<uint8_t, kPageSize> out) {
  ReclaimStore* store = store_.load(std::memory_order_acquire);
  if (store == nullptr) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "no reclaim store is attached to load page {:#x} from", page.value());
  }
  return store->load(page, out);
}

// finish() erased the entries already, under the lock; only the event is left.
void GuestPhysical::refaulted(IpaRange run, uint64_t latency_ns) {
  if (ReclaimEvents* events = events_.load(std::memory_order_acquire))
    events->refaulted(run, latency_ns);
}

void GuestPhysical::write_fault(Ipa page) {
  window_.mark_written(IpaRange{page.align_down(kPageSize), kPageSize});
}

void GuestPhysical::attach_reclaim_store(ReclaimStore& store, ReclaimEvents* events) {
  events_.store(events, std::memory_order_release);
  store_.store(&store, std::memory_order_release);
}

void GuestPhysical::mark_window_written(IpaRange range) {
  window_.mark_written(range);
}

// Select under the shared lock and open the window before releasing it: no change can come
// between the selection and the start of the recording.
Result<std::vector<WindowRun>> GuestPhysical::open_reclaim_window(std::span<const IpaRange> runs) {
  std::shared_lock guard(lock_);
  std::vector<WindowRun> taken;
  for (const IpaRange& run : runs) {
    if (!run.start.is_aligned(kPageSize) || !is_aligned(run.size, kPageSize) || run.overflows()) {
      return make_error(ErrorCode::kInvalidArgument, "reclaim window: {} is not page aligned", run);
    }
    HVMM_TRY(take_candidates(run, taken));
  }
  std::vector<Ipa> pages;
  for (const WindowRun& part : taken) {
    for (uint64_t at = 0; at < part.range.size; at += kPageSize)
      pages.push_back(part.range.start + at);
  }
  HVMM_TRY(window_.open(std::move(pages)));
  return taken;
}

// Resident, unpinned leaves, narrowed to the memfd's allocated extents (a hole has nothing
// to keep: it reads as zero and costs no memory).
Result<void> GuestPhysical::take_candidates(IpaRange run, std::vector<WindowRun>& taken) const {
  std::optional<Error> error;
  for_each_host_run(
      *map_, run,
      [](stage2::Descriptor leaf) {
        return leaf.state().backing == Backing::kResident && !leaf.state().pinned;
      },
      [&](IpaRange part, HostOffset output) {
        const HostOffset end = output + part.size;
        for (HostOffset at = output; at < end && !error;) {
          auto extent = memory_->extent_around(at, HostRange{at, end - at});
          if (!extent) {
            error = extent.error();
            return;
          }
          if (extent->allocated) {
            taken.push_back(
                WindowRun{IpaRange{part.start + (extent->range.start - output), extent->range.size},
                          extent->range.start});
          }
          at = extent->range.end();
        }
      });
  if (error)
    return make_error(error->code, "reclaim window over {}: {}", run, error->message);
  return Ok();
}

// Close under the exclusive lock, sort the stored pages by the marks, reclaim the rest run by
// run, and erase what the store holds for pages that stay resident. The closed window's hold
// lasts until the punches are done: a write mark that comes after the close waits for it,
// so the write it precedes meets a punched page, never lands just before the punch.
WindowCommit GuestPhysical::commit_reclaim_window(std::span<const Ipa> stored) {
  std::unique_lock guard(lock_);
  ReclaimWindowClose closed = window_.close();
  const ReclaimWindowMarks& marks = closed.marks;
  std::vector<Ipa> pages(stored.begin(), stored.end());
  std::sort(pages.begin(), pages.end());
  WindowCommit commit;
  std::vector<Ipa> clean;
  for (Ipa page : pages) {
    if (holds(marks.written, page)) {
      commit.aborted.push_back(page);
    } else if (holds(marks.changed, page)) {
      commit.skipped.push_back(page);
    } else {
      clean.push_back(page);
    }
  }
  for (const IpaRange& run : runs_of(clean)) {
    auto changed = change_backing(guard, run, Backing::kReclaimed,
                                  ChangeOptions{stage2::ChangeReason::kReclaim, /*blockable=*/true,
                                                /*restores_contents=*/false,
                                                /*marks_window=*/false});
    const bool committed =
        changed.ok() || count_pages(*map_, run)[Backing::kReclaimed] == run.size / kPageSize;
    if (!changed.ok() && !commit.error)
      commit.error = changed.error();
    std::vector<Ipa>& into = committed ? commit.reclaimed : commit.skipped;
    for (uint64_t at = 0; at < run.size; at += kPageSize)
      into.push_back(run.start + at);
  }
  closed.hold.unlock();
  std::sort(commit.skipped.begin(), commit.skipped.end());
  for (const IpaRange& run : runs_of(commit.aborted))
    erase_entries(guard, run);
  for (const IpaRange& run : runs_of(commit.skipped))
    erase_entries(guard, run);
  return commit;
}

// The same close, nothing reclaimed.
void GuestPhysical::abandon_reclaim_window(std::span<const Ipa> stored) {
  std::unique_lock guard(lock_);
  window_.close().hold.unlock();
  std::vector<Ipa> pages(stored.begin(), stored.end());
  std::sort(pages.begin(), pages.end());
  for (const IpaRange& run : runs_of(pages))
    erase_entries(guard, run);
}

// One erase per page; the guard proves the exclusive hold.
void GuestPhysical::erase_entries(const std::unique_lock<std::shared_mutex>&, IpaRange run) {
  ReclaimStore* store = store_.load(std::memory_order_acquire);
  if (store == nullptr)
    return;
  for (uint64_t at = 0; at < run.size; at += kPageSize)
    store->erase(run.start + at);
}

}  // namespace hvmm::vmm
