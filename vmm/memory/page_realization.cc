// Realization of page states on the memfd: punch what stopped being resident or mapped.
#include "hvmm/vmm/memory/page_realization.h"

#include <utility>

namespace hvmm::vmm {

void for_each_host_run(const stage2::Stage2Map& map, IpaRange range,
                       const std::function<bool(stage2::Descriptor leaf)>& select,
                       const std::function<void(IpaRange run, HostOffset output)>& visit) {
  std::optional<std::pair<IpaRange, HostOffset>> run;
  map.walk_leaves(range, [&](IpaRange part, HostOffset output, unsigned, stage2::Descriptor leaf) {
    if (!select(leaf))
      return;
    if (run && run->first.end() == part.start && run->second + run->first.size == output) {
      run->first.size += part.size;
      return;
    }
    if (run)
      visit(run->first, run->second);
    run.emplace(part, output);
  });
  if (run)
    visit(run->first, run->second);
}

// An unmap removes the leaves, so where their pages live is read before they go.
Result<void> PageRealization::range_start(const stage2::Change& change) {
  unmapping_.clear();
  if (change.kind != stage2::ChangeKind::kUnmap)
    return Ok();
  for_each_host_run(
      map_, change.range, [](stage2::Descriptor) { return true; },
      [&](IpaRange run, HostOffset output) {
        unmapping_.push_back(HostRange{output, run.size});
      });
  return Ok();
}

// Punch every non-resident run of a page-state change, or what an unmap removed.
void PageRealization::range_updated(const stage2::Change& change) {
  if (change.kind == stage2::ChangeKind::kUnmap) {
    for (const HostRange& range : std::exchange(unmapping_, {}))
      punch(range);
    return;
  }
  if (change.kind != stage2::ChangeKind::kPageState)
    return;
  for_each_host_run(
      map_, change.range,
      [](stage2::Descriptor leaf) { return leaf.state().backing != stage2::Backing::kResident; },
      [&](IpaRange run, HostOffset output) {
        punch(HostRange{output, run.size});
      });
}

// An abandoned unmap punches nothing.
void PageRealization::range_end(const stage2::Change&) {
  unmapping_.clear();
}

// Release one host run; keep the first error of the change for the owner.
void PageRealization::punch(HostRange range) {
  ++stats_.punches;
  stats_.punched_bytes += range.size;
  Result<void> released = memory_.release(range.start, range.size);
  if (!released.ok() && !error_)
    error_ = released.error();
}

}  // namespace hvmm::vmm
