// select_coldest: an age histogram, a threshold, and one pass to take the pages.
#include "hvmm/vmm/reclaim/reclaim_candidates.h"

#include <algorithm>

namespace hvmm::vmm {
namespace {

// The histogram bucket of a candidate idle for `idle` epochs (idle >= rule.cold).
uint64_t bucket_of(uint64_t idle, const CandidateRule& rule) {
  return std::min(idle - rule.cold, kAgeBuckets - 1);
}

// Call `visit(index, view)` for every candidate page of `allocated`.
template <typename Visit>
void for_each_candidate(const PageAges& ages, std::span<const PageIndexRun> allocated,
                        const CandidateRule& rule, Visit&& visit) {
  for (const PageIndexRun& run : allocated) {
    for (uint64_t index = run.first; index < run.first + run.count; ++index) {
      const PageAgeView view = ages.view(index);
      if (PageAges::is_candidate(view, rule))
        visit(index, view);
    }
  }
}

// The bucket from which on (downwards) the histogram holds `want` pages, and how many to
// take from that bucket itself.
struct Threshold {
  uint64_t bucket = 0;
  uint64_t take_at_bucket = 0;
};

Threshold threshold_for(const std::vector<uint64_t>& counts, uint64_t want) {
  uint64_t above = 0;
  for (uint64_t bucket = kAgeBuckets; bucket-- > 0;) {
    if (above + counts[bucket] >= want)
      return Threshold{bucket, want - above};
    above += counts[bucket];
  }
  return Threshold{0, counts[0]};
}

}  // namespace

// Count, pick the threshold, take, sort the (bounded) selection.
CandidateSelection select_coldest(const PageAges& ages, std::span<const PageIndexRun> allocated,
                                  const CandidateRule& rule, uint64_t want) {
  CandidateSelection selection;
  std::vector<uint64_t> counts(kAgeBuckets, 0);
  for_each_candidate(ages, allocated, rule, [&](uint64_t, const PageAgeView& view) {
    counts[bucket_of(view.idle, rule)] += 1;
    selection.eligible += 1;
  });
  if (want == 0 || selection.eligible == 0)
    return selection;
  Threshold threshold = threshold_for(counts, want);
  selection.pages.reserve(std::min(want, selection.eligible));
  for_each_candidate(ages, allocated, rule, [&](uint64_t index, const PageAgeView& view) {
    const uint64_t bucket = bucket_of(view.idle, rule);
    if (bucket > threshold.bucket || (bucket == threshold.bucket && threshold.take_at_bucket > 0)) {
      if (bucket == threshold.bucket)
        threshold.take_at_bucket -= 1;
      if (selection.pages.size() < want)
        selection.pages.push_back(Candidate{index, view.idle});
    }
  });
  std::sort(selection.pages.begin(), selection.pages.end(),
            [](const Candidate& a, const Candidate& b) {
              return a.idle != b.idle ? a.idle > b.idle : a.index < b.index;
            });
  return selection;
}

}  // namespace hvmm::vmm
