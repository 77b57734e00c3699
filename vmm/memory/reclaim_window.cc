// ReclaimWindow: marks over a sorted page list, under one mutex.
#include "hvmm/vmm/memory/reclaim_window.h"

#include <algorithm>

namespace hvmm::vmm {

// Sort the pages, clear the marks, and mark what in-flight VMM writes cover.
Result<void> ReclaimWindow::open(std::vector<Ipa> pages) {
  std::lock_guard guard(lock_);
  if (open_) {
    return make_error(ErrorCode::kFailedPrecondition, "a reclaim window is already open ({} pages)",
                      pages_.size());
  }
  std::sort(pages.begin(), pages.end());
  pages_ = std::move(pages);
  written_.assign(pages_.size(), false);
  changed_.assign(pages_.size(), false);
  open_ = true;
  for (const Access& access : accesses_) {
    if (access.write)
      mark(access.range, written_);
  }
  return Ok();
}

bool ReclaimWindow::is_open() const {
  std::lock_guard guard(lock_);
  return open_;
}

void ReclaimWindow::mark_written(IpaRange range) {
  std::lock_guard guard(lock_);
  mark(range, written_);
}

void ReclaimWindow::mark_changed(IpaRange range) {
  std::lock_guard guard(lock_);
  mark(range, changed_);
}

// Busy pages count as written; a written page is not also reported changed. The lock goes
// to the caller.
ReclaimWindowClose ReclaimWindow::close() {
  std::unique_lock guard(lock_);
  ReclaimWindowMarks marks;
  if (!open_)
    return ReclaimWindowClose{std::move(marks), std::move(guard)};
  for (const Access& access : accesses_)
    mark(access.range, written_);
  for (size_t i = 0; i < pages_.size(); ++i) {
    if (written_[i])
      marks.written.push_back(pages_[i]);
    else if (changed_[i])
      marks.changed.push_back(pages_[i]);
  }
  open_ = false;
  pages_.clear();
  written_.clear();
  changed_.clear();
  return ReclaimWindowClose{std::move(marks), std::move(guard)};
}

// Register the access, and mark it at once when it writes into an open window.
uint64_t ReclaimWindow::begin_access(IpaRange range, bool write) {
  std::lock_guard guard(lock_);
  const uint64_t token = next_token_++;
  accesses_.push_back(Access{token, range, write});
  if (write)
    mark(range, written_);
  return token;
}

// Accesses are few (one per VMM thread at most): a linear search.
void ReclaimWindow::end_access(uint64_t token) {
  std::lock_guard guard(lock_);
  auto it = std::find_if(accesses_.begin(), accesses_.end(),
                         [token](const Access& access) { return access.token == token; });
  if (it != accesses_.end()) {
    *it = accesses_.back();
    accesses_.pop_back();
  }
}

// The window's pages inside `range`, by binary search; the lock is held.
void ReclaimWindow::mark(IpaRange range, std::vector<bool>& marks) {
  if (!open_ || range.empty())
    return;
  auto first = std::lower_bound(pages_.begin(), pages_.end(), range.start.align_down(kPageSize));
  for (auto it = first; it != pages_.end() && range.end() > *it; ++it) {
    marks[static_cast<size_t>(it - pages_.begin())] = true;
  }
}

}  // namespace hvmm::vmm
