// DirtyAccumulator: a bitmap of written pages, filled by the harvester, emptied by takes.
#include "hvmm/vmm/reclaim/dirty/dirty_accumulator.h"

#include <bit>

namespace hvmm::vmm {
namespace {

// The set bits of `word` in [lo, hi) (bit positions 0..64).
uint64_t bits_between(uint64_t word, unsigned lo, unsigned hi) {
  const uint64_t below_hi = hi >= 64 ? ~uint64_t{0} : (uint64_t{1} << hi) - 1;
  const uint64_t from_lo = ~((uint64_t{1} << lo) - 1);
  return word & below_hi & from_lo;
}

}  // namespace

DirtyAccumulator::DirtyAccumulator(std::vector<RamRegion> ram, uint64_t backing_size)
    : index_(std::move(ram), backing_size), bits_((index_.pages() + 63) / 64) {}

// Word-wise over each index run of the RAM parts.
void DirtyAccumulator::add(IpaRange run) {
  std::lock_guard guard(lock_);
  index_.for_each_run(run, [&](PageIndexRun pages) {
    for (uint64_t page = pages.first; page < pages.first + pages.count;) {
      const auto bit = static_cast<unsigned>(page % 64);
      const auto end =
          static_cast<unsigned>(std::min<uint64_t>(64, bit + (pages.first + pages.count - page)));
      uint64_t& word = bits_[page / 64];
      const uint64_t mask = bits_between(~uint64_t{0}, bit, end);
      pending_ += static_cast<uint64_t>(std::popcount(mask & ~word));
      word |= mask;
      page += end - bit;
    }
  });
}

// Each index run of the range maps onto one IPA-contiguous stretch (a run never crosses a
// region), so the set bits become IPA runs in order; neighbours across runs are joined.
DirtyRuns DirtyAccumulator::take(IpaRange range) {
  DirtyRuns taken;
  std::lock_guard guard(lock_);
  index_.for_each_run(range, [&](PageIndexRun pages) {
    const Ipa base = *index_.ipa_of(pages.first);
    const uint64_t end_page = pages.first + pages.count;
    for (uint64_t page = pages.first; page < end_page;) {
      const auto bit = static_cast<unsigned>(page % 64);
      const auto end = static_cast<unsigned>(std::min<uint64_t>(64, bit + (end_page - page)));
      uint64_t& word = bits_[page / 64];
      uint64_t set = bits_between(word, bit, end);
      word &= ~set;
      while (set != 0) {
        const auto first = static_cast<unsigned>(std::countr_zero(set));
        const auto length = static_cast<unsigned>(std::countr_one(set >> first));
        const Ipa start = base + (page - pages.first + (first - bit)) * kPageSize;
        if (!taken.runs.empty() && taken.runs.back().end() == start)
          taken.runs.back().size += uint64_t{length} * kPageSize;
        else
          taken.runs.push_back(IpaRange{start, uint64_t{length} * kPageSize});
        taken.pages += length;
        set &= first + length >= 64 ? 0 : ~((uint64_t{1} << (first + length)) - 1);
      }
      page += end - bit;
    }
  });
  pending_ -= taken.pages;
  return taken;
}

uint64_t DirtyAccumulator::pending() const {
  std::lock_guard guard(lock_);
  return pending_;
}

}  // namespace hvmm::vmm
