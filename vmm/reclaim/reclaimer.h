// Reclaimer: the reclaim window, how a page leaves guest memory without losing a write.
//
// reclaim(runs) cuts the runs into windows of at most max_window bytes and runs each:
//   (a) open: GuestPhysical takes the window's pages that are resident, unpinned and
//       allocated in the memfd (the others are skipped) and starts recording writes to them
//       (ReclaimWindow); the pages are write-protected on the PRIMARY mapping
//       (UFFDIO_WRITEPROTECT), the one the guest and KVM write through;
//   (b) copy each page out through the ALIAS mapping (never protected, never registered) and
//       store() it;
//   (c) commit: GuestPhysical, holding the map lock exclusively, closes the window, drops
//       the pages written while it was open, makes the rest reclaimed (the realization
//       punches them out of the memfd) and erases the entries of the pages it kept;
//   (d) lift the write protection of the whole window: the pages kept resident (written,
//       incompressible, the store full) are writable again, and the punched ones lose the
//       uffd-wp markers the punch left in the primary's page tables.
//
// Why no write is lost. A guest write to a page of the window after (a) faults on the
// write protection and blocks until the fault handler lifts it; the handler first marks the
// page written (GuestPhysical::write_fault), under the ReclaimWindow's mutex, which the
// commit takes too, with the map lock held, to close the window, and keeps until its punch
// is done. So either the mark comes first, and the commit keeps the page resident (the write
// then lands in it), or the close comes first, and the mark waits until the page is punched:
// the writer, let through only then, finds the page missing and faults again, and that
// MISSING fault is served from the store (the contents copied in (b), which no write could
// have changed since (a)). A VMM write goes through the alias, which is not protected:
// GuestPhysical::write marks the pages written (the same mutex, the same wait) before it
// copies, and every VMM access in flight keeps its pages out of a commit.
// The KVM side: UFFDIO_WRITEPROTECT on shmem changes the primary's page tables through
// change_protection(), whose MMU-notifier invalidation makes KVM drop its writable stage-2
// entries for the range, so a guest write really faults into the host's page tables (and
// so into userfaultfd); KVM's own writes to guest memory (kvmclock, steal time) go through
// the primary mapping too (the memslot's userspace address), and fault alike.
// Windows are bounded (2 MiB by default) so that a write-protected page never waits long:
// the copy and compression of one window, never a whole pass.
//
// Requirements: the fault handler registered the primary mapping with WP
// (FaultHandlerConfig::register_write_protect) and uses `physical` as its ReclaimedPages
// (FaultHandlerConfig::reclaimed), so WP faults mark the window and reclaimed pages come
// back from the store. The constructor attaches `store` and `events` to `physical`
// (refaults and VMM accesses use them): they must outlive every fault and VMM access.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/fault/userfault_fd.h"
#include "hvmm/vmm/memory/guest_physical.h"
#include "hvmm/vmm/reclaim/page_reclaimer.h"
#include "hvmm/vmm/reclaim/reclaim_store.h"

namespace hvmm::vmm {

class Reclaimer final : public PageReclaimer {
 public:
  static constexpr uint64_t kDefaultMaxWindow = kLargePageSize;  // 2 MiB

  // `uffd` is the fault handler's (registered with WP). `max_window` is rounded down to
  // whole pages, at least one.
  Reclaimer(GuestPhysical& physical, Userfaultfd& uffd, ReclaimStore& store, ReclaimEvents* events,
            uint64_t max_window = kDefaultMaxWindow);

  // PageReclaimer: one window after another, each committed before the next opens. Calls
  // are serialized. Fails (nothing committed) when userfaultfd offers no WP on shmem.
  Result<ReclaimBatch> reclaim(std::span<const IpaRange> runs) override;

  uint64_t max_window() const { return max_window_; }

 private:
  // The requested runs cut into windows of at most max_window_ bytes.
  std::vector<std::vector<IpaRange>> windows_of(std::span<const IpaRange> runs) const;
  // One window, (a) to (d), its outcome added to `batch`. An error: nothing committed.
  Result<void> run_window(std::span<const IpaRange> runs, ReclaimBatch& batch);
  // (a): write-protect the taken runs on the primary mapping.
  Result<void> protect(std::span<const WindowRun> taken);
  // (d): lift the protection again (every taken run; errors are returned, the first only).
  Result<void> unprotect(std::span<const WindowRun> taken);
  // After (d): unmap the taken runs from the alias again (the copy mapped them there).
  void drop_alias_mappings(std::span<const WindowRun> taken);
  // (b): copy out and store each page; the pages the store kept.
  Result<std::vector<Ipa>> store_pages(std::span<const WindowRun> taken, ReclaimBatch& batch);

  GuestPhysical& physical_;
  Userfaultfd& uffd_;
  ReclaimStore& store_;
  uint64_t max_window_;
  std::mutex lock_;            // one reclaim() at a time
  std::vector<uint8_t> page_;  // the copy of the page being stored
};

}  // namespace hvmm::vmm
