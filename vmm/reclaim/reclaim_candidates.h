// select_coldest: the pages an epoch hands to the reclaimer, coldest first.
//
// Two passes over the allocated pages only (the memfd's allocated extents; a hole is never a
// candidate), so an epoch costs O(allocated) however large the guest: the first counts the
// candidates by idle age, which gives the age threshold that yields `want` pages; the second
// takes the pages above it, and those at it in IPA order until `want`. Only the selection
// (at most `want` entries, bounded by the rate limit) is sorted. Ages more than kAgeBuckets
// epochs above the cold threshold share one bucket and are taken in IPA order among
// themselves: all of them are far colder than anything that must stay.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "hvmm/vmm/reclaim/guest_page_index.h"
#include "hvmm/vmm/reclaim/page_ages.h"

namespace hvmm::vmm {

// A chosen page and its idle age when chosen.
struct Candidate {
  uint64_t index = 0;
  uint64_t idle = 0;
};

// What select_coldest() found.
struct CandidateSelection {
  std::vector<Candidate> pages;  // coldest first, then lower index first
  uint64_t eligible = 0;         // candidates among the allocated pages
};

inline constexpr uint64_t kAgeBuckets = 4096;

// At most `want` candidates under `rule` among the pages of `allocated` (sorted, disjoint).
CandidateSelection select_coldest(const PageAges& ages, std::span<const PageIndexRun> allocated,
                                  const CandidateRule& rule, uint64_t want);

}  // namespace hvmm::vmm
