// ReclaimWindow: the pages one reclaim window took, and which of them it must give back.
//
// A reclaim window write-protects its pages on the primary mapping, copies them out through
// the alias and commits: the pages nobody wrote while it was open become reclaimed and are
// punched. Three things make a page stay resident, and all are recorded here, under one
// mutex, before they can let a write through:
//   - written: a WP fault on it (the guest or KVM writing through the primary mapping; the
//     fault handler marks it before lifting the protection) or a VMM write through
//     GuestPhysical (marked before the copy);
//   - busy: a VMM access (read or write) in flight over it when the window opens or closes:
//     its copy goes through the alias, which no protection covers, and a copy that
//     translated the page before the punch could land after it;
//   - changed: another change of its page state (balloon, report, unmap) while open.
// close() is called by the commit with the map lock held exclusively, and returns a hold of
// the mutex that the commit keeps until its punch is done: a marking that comes meanwhile
// waits (and with it the write it precedes), then finds no window, and its write meets a
// punched page (and a fault, or a restore, that brings the saved contents back first). No
// write can slip in between the check and the punch: that is what the hold is for, since
// neither a WP fault's write (once the handler lifts the protection) nor a VMM copy through a
// stage-2 TLB hit waits for the map lock.
// One window at a time; accesses are tracked whether a window is open or not.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"

namespace hvmm::vmm {

// What happened to the window's pages while it was open (each sorted by IPA).
struct ReclaimWindowMarks {
  std::vector<Ipa> written;  // written, or under a VMM access (busy)
  std::vector<Ipa> changed;  // their page state changed (and not written)
};

// A closed window's marks, and the hold that keeps every marking waiting until it ends.
struct ReclaimWindowClose {
  ReclaimWindowMarks marks;
  std::unique_lock<std::mutex> hold;
};

class ReclaimWindow {
 public:
  // Open over `pages` (page aligned, any order). Pages under an in-flight VMM write are
  // written at once. Fails when a window is open.
  Result<void> open(std::vector<Ipa> pages);
  // Whether a window is open.
  bool is_open() const;
  // Mark the window's pages inside `range` written / changed (no window: nothing).
  void mark_written(IpaRange range);
  void mark_changed(IpaRange range);
  // Close the window: its marks, with the pages under in-flight VMM accesses counted written,
  // and the hold (release it once the pages are punched; do not mark meanwhile).
  ReclaimWindowClose close();

  // A VMM access over `range` (page aligned) begins: a write marks the window's pages in it
  // written. The token ends it.
  uint64_t begin_access(IpaRange range, bool write);
  void end_access(uint64_t token);

 private:
  // What one in-flight VMM access covers.
  struct Access {
    uint64_t token;
    IpaRange range;
    bool write;
  };
  void mark(IpaRange range, std::vector<bool>& marks);

  mutable std::mutex lock_;
  bool open_ = false;
  std::vector<Ipa> pages_;  // sorted
  std::vector<bool> written_;
  std::vector<bool> changed_;
  std::vector<Access> accesses_;
  uint64_t next_token_ = 1;
};

// RAII: one VMM access registered with a ReclaimWindow for its lifetime.
class ReclaimWindowAccess {
 public:
  ReclaimWindowAccess(ReclaimWindow& window, IpaRange range, bool write)
      : window_(window), token_(window.begin_access(range, write)) {}
  ~ReclaimWindowAccess() { window_.end_access(token_); }
  ReclaimWindowAccess(const ReclaimWindowAccess&) = delete;
  ReclaimWindowAccess& operator=(const ReclaimWindowAccess&) = delete;

 private:
  ReclaimWindow& window_;
  uint64_t token_;
};

}  // namespace hvmm::vmm
