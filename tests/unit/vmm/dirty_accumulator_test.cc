// Tests of DirtyAccumulator against a model (a set of page numbers): random adds and takes
// over a layout with a hole, each take checked to be exactly the model's pages inside the
// range, in IPA order, coalesced (no two runs touch), and to leave the pages outside it;
// plus the word edges, and concurrent adders losing nothing. HVMM_TEST_SEED replays a seed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "hvmm/vmm/reclaim/dirty/dirty_accumulator.h"

namespace hvmm::vmm {
namespace {

// Two regions around a hole, the upper one not at a multiple of 64 pages of the memfd, so
// runs cross bitmap words and the hole: [0, 200 pages) at offset 0, [1000, 1300) pages at
// offset 200 pages.
constexpr uint64_t kLowPages = 200;
constexpr uint64_t kHighFirst = 1000;
constexpr uint64_t kHighPages = 300;

std::vector<RamRegion> layout() {
  return {RamRegion{IpaRange{Ipa(0), kLowPages * kPageSize}, HostOffset(0)},
          RamRegion{IpaRange{Ipa(kHighFirst * kPageSize), kHighPages * kPageSize},
                    HostOffset(kLowPages * kPageSize)}};
}
constexpr uint64_t kBacking = (kLowPages + kHighPages) * kPageSize;

bool is_ram(uint64_t page) {
  return page < kLowPages || (page >= kHighFirst && page < kHighFirst + kHighPages);
}

IpaRange pages(uint64_t first, uint64_t count) {
  return IpaRange{Ipa(first * kPageSize), count * kPageSize};
}

uint64_t seed() {
  const char* text = std::getenv("HVMM_TEST_SEED");
  return text != nullptr ? std::strtoull(text, nullptr, 0) : std::random_device{}();
}

// A take is the model's pages of the range, in order, coalesced; the model loses them.
void check_take(DirtyAccumulator& accumulator, std::set<uint64_t>& model, uint64_t first,
                uint64_t count) {
  const DirtyRuns taken = accumulator.take(pages(first, count));
  std::vector<uint64_t> got;
  for (size_t i = 0; i < taken.runs.size(); ++i) {
    const IpaRange& run = taken.runs[i];
    ASSERT_FALSE(run.empty());
    if (i > 0) {
      ASSERT_LT(taken.runs[i - 1].end(), run.start) << "runs out of order or not coalesced";
    }
    for (uint64_t p = run.start.page_number(); p < run.end().page_number(); ++p)
      got.push_back(p);
  }
  std::vector<uint64_t> want;
  for (auto it = model.lower_bound(first); it != model.end() && *it < first + count;)
    want.push_back(*it), it = model.erase(it);
  ASSERT_EQ(got, want) << "take of pages [" << first << ", " << first + count << ")";
  ASSERT_EQ(taken.pages, want.size());
}

// Random adds (some crossing the hole or leaving RAM) and takes against the model, then a
// take of everything; the pending count follows the model throughout.
TEST(DirtyAccumulator, RandomAddsAndTakesMatchTheModel) {
  const uint64_t s = seed();
  SCOPED_TRACE("HVMM_TEST_SEED=" + std::to_string(s));
  std::mt19937_64 rng(s);
  DirtyAccumulator accumulator(layout(), kBacking);
  std::set<uint64_t> model;
  const uint64_t span = kHighFirst + kHighPages + 50;
  for (int step = 0; step < 3000; ++step) {
    const uint64_t first = rng() % span;
    const uint64_t count = 1 + rng() % (rng() % 4 == 0 ? 400 : 70);
    if (rng() % 3 != 0) {
      accumulator.add(pages(first, count));
      for (uint64_t p = first; p < first + count; ++p)
        if (is_ram(p))
          model.insert(p);
    } else {
      ASSERT_NO_FATAL_FAILURE(check_take(accumulator, model, first, count)) << "step " << step;
    }
    ASSERT_EQ(accumulator.pending(), model.size()) << "step " << step;
  }
  ASSERT_NO_FATAL_FAILURE(check_take(accumulator, model, 0, span));
  EXPECT_TRUE(model.empty());
  EXPECT_EQ(accumulator.pending(), 0u);
}

// A run over a whole word, one ending on a word's last bit, and one starting on its first:
// all come back as one run each; an unaligned add marks every page it touches.
TEST(DirtyAccumulator, WordEdgesAndPartialPages) {
  DirtyAccumulator accumulator(layout(), kBacking);
  accumulator.add(pages(64, 64));
  accumulator.add(pages(130, 62));  // ends at bit 63 of word 2
  accumulator.add(IpaRange{Ipa(5 * kPageSize + 100), 10});
  DirtyRuns taken = accumulator.take(pages(0, kLowPages));
  ASSERT_EQ(taken.runs.size(), 3u);
  EXPECT_EQ(taken.runs[0], pages(5, 1));
  EXPECT_EQ(taken.runs[1], pages(64, 64));
  EXPECT_EQ(taken.runs[2], pages(130, 62));
  EXPECT_EQ(taken.pages, 127u);
  EXPECT_TRUE(accumulator.take(pages(0, kLowPages)).runs.empty());
}

// Adds from several threads while another takes: every page added is taken exactly once.
TEST(DirtyAccumulator, ConcurrentAddsLoseNothing) {
  DirtyAccumulator accumulator(layout(), kBacking);
  std::vector<std::thread> adders;
  for (unsigned t = 0; t < 4; ++t) {
    adders.emplace_back([&, t] {
      for (uint64_t p = t; p < kLowPages; p += 4)
        accumulator.add(pages(p, 1));
    });
  }
  std::set<uint64_t> seen;
  uint64_t repeats = 0;
  auto drain = [&] {
    for (const IpaRange& run : accumulator.take(pages(0, kLowPages)).runs)
      for (uint64_t p = run.start.page_number(); p < run.end().page_number(); ++p)
        repeats += seen.insert(p).second ? 0 : 1;
  };
  for (int i = 0; i < 50; ++i)
    drain();
  for (auto& adder : adders)
    adder.join();
  drain();
  EXPECT_EQ(seen.size(), kLowPages);
  EXPECT_EQ(repeats, 0u);
}

}  // namespace
}  // namespace hvmm::vmm
