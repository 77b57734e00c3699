// Tests of the adaptive fault-around window: tables of fault sequences and the window each
// fault gets, assuming each fault resolves its whole window.
#include "hvmm/vmm/fault/fault_window.h"

#include <gtest/gtest.h>

#include <vector>

namespace hvmm::vmm {
namespace {

constexpr uint64_t K = 1024;
constexpr uint64_t M = 1024 * K;

// One fault of a sequence: where it lands (a page index, or an address) and the window
// size and start the policy must give it.
struct Step {
  uint64_t ipa;
  uint64_t want_size;
  uint64_t want_start;
};

// Run `steps` through a window of maximum `max`, resolving each window whole.
void check_sequence(uint64_t max, const std::vector<Step>& steps) {
  FaultWindow window(max);
  for (size_t i = 0; i < steps.size(); ++i) {
    const IpaRange got = window.window_for(Ipa(steps[i].ipa));
    EXPECT_EQ(got.size, steps[i].want_size) << "step " << i;
    EXPECT_EQ(got.start.value(), steps[i].want_start) << "step " << i;
    EXPECT_TRUE(got.contains(Ipa(steps[i].ipa))) << "step " << i;
    window.resolved(got);
  }
}

// A stream doubles the window each fault (aligned to its size) until the maximum, then stays.
TEST(FaultWindow, SequentialFaultsDoubleUpToTheMaximum) {
  check_sequence(64 * K, {
                             {0x0000, 4 * K, 0x0000},
                             {0x1000, 8 * K, 0x0000},
                             {0x2000, 16 * K, 0x0000},
                             {0x4000, 32 * K, 0x0000},
                             {0x8000, 64 * K, 0x0000},
                             {0x10000, 64 * K, 0x10000},
                             {0x20000, 64 * K, 0x20000},
                         });
}

// Scattered faults halve the window down to one page; a stream after them grows it again.
TEST(FaultWindow, ScatteredFaultsShrinkToOnePage) {
  check_sequence(2 * M, {
                            {0x0000, 4 * K, 0},
                            {0x1000, 8 * K, 0},
                            {0x2000, 16 * K, 0},
                            {0x4000, 32 * K, 0},
                            {0x900000, 16 * K, 0x900000},  // far away: halve
                            {0x300000, 8 * K, 0x300000},
                            {0x7770000, 4 * K, 0x7770000},
                            {0x100000, 4 * K, 0x100000},  // never below one page
                            {0x101000, 8 * K, 0x100000},  // right after: grow again
                        });
}

// A stream going down (frames handed out in descending order) grows the window like one going
// up: the fault lands right below the run the last fault resolved.
TEST(FaultWindow, DescendingFaultsGrowToo) {
  FaultWindow window(64 * K);
  const IpaRange first = window.window_for(Ipa(0x40000));
  EXPECT_EQ(first, (IpaRange{Ipa(0x40000), 4 * K}));
  window.resolved(first);
  const IpaRange second = window.window_for(Ipa(0x3f000));  // just below: grow to 8K
  EXPECT_EQ(second, (IpaRange{Ipa(0x3e000), 8 * K}));
  window.resolved(second);
  const IpaRange third = window.window_for(Ipa(0x3d000));  // below again: 16K
  EXPECT_EQ(third, (IpaRange{Ipa(0x3c000), 16 * K}));
  window.resolved(third);
  // Far below the run is scattered: halve.
  const IpaRange far = window.window_for(Ipa(0x10000));
  EXPECT_EQ(far.size, 8 * K);
}

// A fault inside the window after the last run still counts as sequential (a skipped page).
TEST(FaultWindow, NearSequentialFaultCountsAsSequential) {
  check_sequence(2 * M, {
                            {0x0000, 4 * K, 0},
                            {0x1000, 8 * K, 0},
                            {0x3000, 16 * K, 0},  // last_end 0x2000 + skip of one page
                        });
}

// With a maximum of 0 (fault-around disabled) every window is the faulting page alone.
TEST(FaultWindow, ZeroMaximumMeansOnePage) {
  check_sequence(0, {
                        {0x0000, 4 * K, 0},
                        {0x1000, 4 * K, 0x1000},
                        {0x2000, 4 * K, 0x2000},
                    });
}

// A maximum that is no power of two is rounded down to one (48K -> 32K).
TEST(FaultWindow, MaximumRoundsDownToAPowerOfTwo) {
  EXPECT_EQ(FaultWindow(48 * K).max(), 32 * K);
  EXPECT_EQ(FaultWindow(100).max(), 4 * K);
}

// The next fault is judged against the run actually resolved: a clipped run makes a fault
// past the window's end scattered, one right after the clipped run sequential.
TEST(FaultWindow, JudgedAgainstTheResolvedRun) {
  FaultWindow window(2 * M);
  window.resolved(window.window_for(Ipa(0)));
  const IpaRange second = window.window_for(Ipa(0x1000));  // 8K at 0
  EXPECT_EQ(second.size, 8 * K);
  window.resolved(IpaRange{Ipa(0x1000), 4 * K});  // clipped: only one page was fillable
  EXPECT_EQ(window.window_for(Ipa(0x2000)).size, 16 * K);
}

// A fixed window is the maximum for every fault, sequential or not.
TEST(FaultWindow, FixedWindowIgnoresTheHistory) {
  FaultWindow window(64 * K, /*adaptive=*/false);
  for (uint64_t ipa : {0x0ull, 0x900000ull, 0x10000ull, 0x123000ull}) {
    const IpaRange got = window.window_for(Ipa(ipa));
    EXPECT_EQ(got.size, 64 * K) << ipa;
    EXPECT_EQ(got.start.value(), align_down(ipa, 64 * K)) << ipa;
    window.resolved(got);
  }
}

}  // namespace
}  // namespace hvmm::vmm
