// Reclaimer: windows of write-protect, copy out, store, commit, unprotect.
#include "hvmm/vmm/reclaim/reclaimer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>

namespace hvmm::vmm {
namespace {

// The pages of `runs`, sorted.
std::vector<Ipa> pages_of(std::span<const IpaRange> runs) {
  std::vector<Ipa> pages;
  for (const IpaRange& run : runs) {
    for (uint64_t at = 0; at < run.size; at += kPageSize)
      pages.push_back(run.start + at);
  }
  std::sort(pages.begin(), pages.end());
  return pages;
}

// The pages of the taken runs, sorted.
std::vector<Ipa> pages_of(std::span<const WindowRun> taken) {
  std::vector<IpaRange> runs;
  for (const WindowRun& run : taken)
    runs.push_back(run.range);
  return pages_of(runs);
}

// Append `from` to `to`.
void append(std::vector<Ipa>& to, const std::vector<Ipa>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

}  // namespace

// Attach the store for the way back (refaults, VMM accesses) before any page can leave.
Reclaimer::Reclaimer(GuestPhysical& physical, Userfaultfd& uffd, ReclaimStore& store,
                     ReclaimEvents* events, uint64_t max_window)
    : physical_(physical),
      uffd_(uffd),
      store_(store),
      max_window_(std::max(align_down(max_window, kPageSize), kPageSize)),
      page_(kPageSize) {
  physical_.attach_reclaim_store(store_, events);
}

// Windows in order; a failed window stops the pass (the rest is skipped).
Result<ReclaimBatch> Reclaimer::reclaim(std::span<const IpaRange> runs) {
  std::lock_guard guard(lock_);
  constexpr uint64_t kWpShmem = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
  if ((uffd_.features() & kWpShmem) != kWpShmem) {
    return make_error(ErrorCode::kUnavailable,
                      "reclaim needs userfaultfd write protection on shmem ({} missing)",
                      userfaultfd_feature_names(kWpShmem & ~uffd_.features()));
  }
  ReclaimBatch batch;
  const auto windows = windows_of(runs);
  for (size_t i = 0; i < windows.size(); ++i) {
    Result<void> ran = run_window(windows[i], batch);
    if (ran.ok())
      continue;
    if (batch.windows == 0)
      return ran.error();
    for (size_t rest = i; rest < windows.size(); ++rest)
      append(batch.skipped, pages_of(windows[rest]));
    batch.error = ran.error();
    break;
  }
  return batch;
}

// Greedy: fill each window up to max_window_ bytes, cutting runs where they overflow it.
std::vector<std::vector<IpaRange>> Reclaimer::windows_of(std::span<const IpaRange> runs) const {
  std::vector<std::vector<IpaRange>> windows;
  uint64_t room = 0;
  for (IpaRange run : runs) {
    while (!run.empty()) {
      if (room == 0) {
        windows.emplace_back();
        room = max_window_;
      }
      const uint64_t part = std::min(run.size, room);
      windows.back().push_back(IpaRange{run.start, part});
      run = IpaRange{run.start + part, run.size - part};
      room -= part;
    }
  }
  return windows;
}

// (a) open and protect, (b) store, (c) commit, (d) unprotect. Before the commit an error
// abandons the window (nothing reclaimed, protection lifted, entries erased).
Result<void> Reclaimer::run_window(std::span<const IpaRange> runs, ReclaimBatch& batch) {
  auto taken = physical_.open_reclaim_window(runs);
  HVMM_TRY(taken);
  const std::vector<Ipa> candidates = pages_of(*taken);
  std::vector<Ipa> requested = pages_of(runs);
  std::vector<Ipa> not_taken;
  std::set_difference(requested.begin(), requested.end(), candidates.begin(), candidates.end(),
                      std::back_inserter(not_taken));
  if (Result<void> protected_ = protect(*taken); !protected_.ok()) {
    [[maybe_unused]] auto lifted = unprotect(*taken);
    physical_.abandon_reclaim_window({});
    return protected_.error();
  }
  auto stored = store_pages(*taken, batch);
  if (!stored) {
    [[maybe_unused]] auto lifted = unprotect(*taken);
    physical_.abandon_reclaim_window(candidates);
    return stored.error();
  }
  WindowCommit commit = physical_.commit_reclaim_window(*stored);
  Result<void> lifted = unprotect(*taken);
  drop_alias_mappings(*taken);
  ++batch.windows;
  batch.reclaimed += commit.reclaimed.size();
  append(batch.aborted, commit.aborted);
  append(batch.skipped, not_taken);
  append(batch.skipped, commit.skipped);
  if (commit.error && !batch.error)
    batch.error = commit.error;
  if (!lifted.ok() && !batch.error)
    batch.error = lifted.error();
  return Ok();
}

// UFFDIO_WRITEPROTECT per host run of the primary mapping. After it returns no CPU holds a
// writable translation of the pages (the kernel flushed the TLBs, KVM dropped its stage-2
// entries through the MMU notifier), so what (b) copies is final unless a fault says so.
Result<void> Reclaimer::protect(std::span<const WindowRun> taken) {
  for (const WindowRun& run : taken) {
    HVMM_TRY(uffd_.protect(physical_.memory().guest_base() + run.offset.value(), run.range.size));
  }
  return Ok();
}

// Lifting the protection also wakes writers still blocked on it (their fault message may be
// unread yet): on a kept page the write lands, on a punched page it faults MISSING.
Result<void> Reclaimer::unprotect(std::span<const WindowRun> taken) {
  Result<void> first = Ok();
  for (const WindowRun& run : taken) {
    auto lifted =
        uffd_.unprotect(physical_.memory().guest_base() + run.offset.value(), run.range.size);
    if (!lifted.ok() && first.ok())
      first = lifted;
  }
  return first;
}

// The copy in (b) mapped every page of the window into the alias: drop those mappings again
// (on a shared memfd mapping this only unmaps; the pages stay in the memfd). Otherwise each
// page kept resident counts twice in the process's RSS (RssShmem counts every mapping), and
// an incompressible page would cost the host's figures two pages. Best effort: the next
// alias access maps the page again anyway.
void Reclaimer::drop_alias_mappings(std::span<const WindowRun> taken) {
  for (const WindowRun& run : taken) {
    [[maybe_unused]] int dropped = ::madvise(physical_.memory().alias_base() + run.offset.value(),
                                             run.range.size, MADV_DONTNEED);
  }
}

// Copy each page out of the alias into a buffer (the store never reads guest memory that a
// VMM write could be changing) and store it; incompressible and full pages stay resident.
Result<std::vector<Ipa>> Reclaimer::store_pages(std::span<const WindowRun> taken,
                                                ReclaimBatch& batch) {
  std::vector<Ipa> stored;
  for (const WindowRun& run : taken) {
    for (uint64_t at = 0; at < run.range.size; at += kPageSize) {
      const Ipa page = run.range.start + at;
      std::memcpy(page_.data(), physical_.memory().alias_base() + (run.offset + at).value(),
                  kPageSize);
      auto outcome =
          store_.store(page, std::span<const uint8_t, kPageSize>(page_.data(), kPageSize));
      if (!outcome) {
        return make_error(outcome.error().code, "reclaim of page {:#x}: {}", page.value(),
                          outcome.error().message);
      }
      switch (*outcome) {
        case StoreOutcome::kCompressed:
        case StoreOutcome::kSameFilled:
          stored.push_back(page);
          break;
        case StoreOutcome::kIncompressible:
          batch.incompressible.push_back(page);
          break;
        case StoreOutcome::kFull:
          batch.full.push_back(page);
          break;
      }
    }
  }
  return stored;
}

}  // namespace hvmm::vmm
