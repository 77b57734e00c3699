// Randomized test of page-state realization on a real memfd and a real GuestPhysical (no KVM
// needed): random balloon inflates and deflates (single runs and PFN batches), free page
// reports (some refused by a notifier subscriber), guest touches through either mapping and
// VMM reads. After every step three views must agree with a simple model of page states:
//   (a) the stage-2 map's state of every page, and the page counters,
//   (b) the memfd's allocated pages (SEEK_DATA/SEEK_HOLE, and mincore on both mappings)
//       = exactly the model's touched resident pages, with the contents last written,
//   (c) the notifier event stream (range, reason, start/end paired) = the changes the model
//       expected.
// The seed is random unless HVMM_TEST_SEED is set, and printed with any failure.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "hvmm/vmm/memory/guest_physical.h"

namespace hvmm::vmm {
namespace {

using stage2::Backing;
using stage2::Change;
using stage2::ChangeReason;

constexpr uint64_t kRam = 8 << 20;
constexpr uint64_t kPages = kRam / kPageSize;
constexpr int kSteps = 600;

// Records every invalidation as "start|end RANGE REASON".
class EventRecorder final : public stage2::IntervalOps {
 public:
  bool invalidate_range_start(const Change& change) override {
    events.push_back(fmt::format("start {} {}", change.range, change_reason_name(change.reason)));
    return true;
  }
  void invalidate_range_end(const Change& change) override {
    events.push_back(fmt::format("end {} {}", change.range, change_reason_name(change.reason)));
  }
  std::vector<std::string> events;
};

// Refuses non-blockable changes while `refuse` is set (the registry ignores refusals of
// blockable ones).
class Refuser final : public stage2::IntervalOps {
 public:
  bool invalidate_range_start(const Change&) override { return !refuse; }
  bool refuse = false;
};

// What the model knows about one page.
struct PageModel {
  Backing backing = Backing::kResident;
  bool allocated = false;  // touched since it last became a hole
  uint8_t byte = 0;        // the value of its first and last byte (0 while a hole)
};

class PageStateModel {
 public:
  PageStateModel(GuestPhysical& physical, uint64_t seed) : physical_(physical), random_(seed) {}

  std::vector<PageModel> pages = std::vector<PageModel>(kPages);
  std::vector<std::string> expected_events;
  Refuser* refuser = nullptr;

  // One random operation, applied to GuestPhysical and to the model.
  void step() {
    const unsigned dice = random_() % 100;
    if (dice < 20) {
      change(random_run(), Backing::kBallooned, ChangeReason::kBalloon, true);
    } else if (dice < 32) {
      change(random_run(), Backing::kResident, ChangeReason::kBalloon, true);
    } else if (dice < 48) {
      change(random_run(), Backing::kReported, ChangeReason::kFreePageReport, random_() % 2 == 0);
    } else if (dice < 58) {
      batch(random_() % 2 == 0 ? Backing::kBallooned : Backing::kResident);
    } else if (dice < 85) {
      touch(random_run(8));
    } else if (dice < 95) {
      vmm_read(random_() % kPages);
    } else {
      refuser->refuse = !refuser->refuse;
    }
  }

  // (a) + (b) + content: the map, the counters and the memfd against the model.
  void check(GuestPhysical& physical) {
    std::vector<Backing> mapped(kPages, Backing::kResident);
    std::vector<bool> seen(kPages, false);
    physical.map().walk_leaves(IpaRange{Ipa(0), kRam}, [&](IpaRange part, HostOffset output,
                                                           unsigned, stage2::Descriptor leaf) {
      for (uint64_t p = part.start.page_number(); p < part.end().page_number(); ++p) {
        mapped[p] = leaf.state().backing;
        seen[p] = true;
        ASSERT_EQ(output + (p - part.start.page_number()) * kPageSize, HostOffset(p * kPageSize));
      }
    });
    PageCounts model_counts;
    for (uint64_t p = 0; p < kPages; ++p) {
      ASSERT_TRUE(seen[p]) << "page " << p << " is not mapped";
      ASSERT_EQ(mapped[p], pages[p].backing) << "map state of page " << p;
      model_counts[pages[p].backing] += 1;
    }
    ASSERT_EQ(physical.page_counts(), model_counts);
    ASSERT_EQ(physical.count_pages_by_walk(), model_counts);
    auto extents = physical.memory().allocated_extents();
    ASSERT_TRUE(extents.ok()) << extents.error().message;
    std::vector<bool> allocated(kPages, false);
    for (const HostRange& extent : *extents) {
      for (uint64_t p = extent.start.page_number(); p < extent.end().page_number(); ++p)
        allocated[p] = true;
    }
    for (bool primary : {true, false}) {
      auto in_core = physical.memory().mincore_pages(primary);
      ASSERT_TRUE(in_core.ok());
      ASSERT_EQ(*in_core, allocated) << "mincore of the " << (primary ? "primary" : "alias");
    }
    const uint8_t* alias = physical.memory().alias_base();
    for (uint64_t p = 0; p < kPages; ++p) {
      ASSERT_EQ(allocated[p], pages[p].allocated) << "memfd allocation of page " << p;
      ASSERT_TRUE(!allocated[p] || pages[p].backing == Backing::kResident)
          << "non-resident page " << p << " is allocated";
      if (allocated[p]) {
        ASSERT_EQ(alias[p * kPageSize], pages[p].byte) << "first byte of page " << p;
        ASSERT_EQ(alias[p * kPageSize + kPageSize - 1], pages[p].byte) << "last byte of " << p;
      }
    }
  }

 private:
  // A run of 1..max_pages pages (sometimes a whole aligned 2 MiB block, to split and merge).
  IpaRange random_run(uint64_t max_pages = 600) {
    if (max_pages > 512 && random_() % 8 == 0) {
      const uint64_t block = random_() % (kRam / kLargePageSize);
      return IpaRange{Ipa(block * kLargePageSize), kLargePageSize};
    }
    const uint64_t first = random_() % kPages;
    const uint64_t count = 1 + random_() % std::min<uint64_t>(max_pages, kPages - first);
    return IpaRange{Ipa(first * kPageSize), count * kPageSize};
  }

  // What a change of `run` to `backing` should do, per page, as the model sees it.
  PageCounts predicted_change(IpaRange run, Backing backing) const {
    PageCounts changed;
    for (uint64_t p = run.start.page_number(); p < run.end().page_number(); ++p) {
      if (pages[p].backing != backing)
        changed[pages[p].backing] += 1;
    }
    return changed;
  }

  // Apply a successful change to the model and expect its event pair.
  void apply(IpaRange run, Backing backing, ChangeReason reason) {
    expect_events(run, reason);
    for (uint64_t p = run.start.page_number(); p < run.end().page_number(); ++p) {
      pages[p].backing = backing;
      if (backing != Backing::kResident) {
        pages[p].allocated = false;  // punched: a hole reads zero
        pages[p].byte = 0;
      }
    }
  }

  void expect_events(IpaRange run, ChangeReason reason) {
    expected_events.push_back(fmt::format("start {} {}", run, change_reason_name(reason)));
    expected_events.push_back(fmt::format("end {} {}", run, change_reason_name(reason)));
  }

  // set_backing of one run: no-op, refused (non-blockable while refusing) or applied.
  void change(IpaRange run, Backing backing, ChangeReason reason, bool blockable) {
    const PageCounts predicted = predicted_change(run, backing);
    auto changed = physical_.set_backing(run, backing, reason, blockable);
    if (predicted.total() == 0) {
      ASSERT_TRUE(changed.ok()) << changed.error().message;
      ASSERT_EQ(changed->total(), 0u);
      return;
    }
    if (refuser->refuse && !blockable) {
      ASSERT_FALSE(changed.ok()) << "a refused change of " << fmt::format("{}", run)
                                 << " was committed";
      ASSERT_EQ(changed.error().code, ErrorCode::kUnavailable);
      expect_events(run, reason);  // the recorder started before the refusal and was ended
      return;
    }
    ASSERT_TRUE(changed.ok()) << changed.error().message;
    ASSERT_EQ(*changed, predicted);
    apply(run, backing, reason);
  }

  // A balloon buffer: 1..256 PFNs clustered in one area, coalesced into runs by the VMM.
  void batch(Backing backing) {
    const uint64_t base = random_() % kPages;
    const uint64_t spread = 1 + random_() % 512;
    std::vector<uint64_t> pfns(1 + random_() % 256);
    for (uint64_t& pfn : pfns)
      pfn = std::min(kPages - 1, base + random_() % spread);
    const std::set<uint64_t> distinct(pfns.begin(), pfns.end());
    std::vector<IpaRange> runs;
    for (uint64_t pfn : distinct) {
      if (!runs.empty() && runs.back().end() == Ipa(pfn * kPageSize)) {
        runs.back().size += kPageSize;
      } else {
        runs.push_back(IpaRange{Ipa(pfn * kPageSize), kPageSize});
      }
    }
    PageCounts predicted;
    for (const IpaRange& run : runs)
      predicted += predicted_change(run, backing);
    const BackingBatch done = physical_.set_backing_runs(runs, backing, ChangeReason::kBalloon);
    ASSERT_EQ(done.runs, runs.size());
    ASSERT_EQ(done.failed_runs, 0u) << done.first_error->message;
    ASSERT_EQ(done.changed, predicted);
    for (const IpaRange& run : runs) {
      if (predicted_change(run, backing).total() != 0)
        apply(run, backing, ChangeReason::kBalloon);
    }
  }

  // A guest touch of `run`: non-resident pages fault and are made resident (the fill plays
  // the userfaultfd handler's zero fill through the alias), then every page is written
  // through the primary mapping or the alias.
  void touch(IpaRange run) {
    const PageCounts absent = predicted_change(run, Backing::kResident);
    if (absent.total() != 0) {
      auto made = physical_.make_resident(
          run, ChangeReason::kFault, [&](IpaRange part, HostOffset output) -> Result<void> {
            uint8_t* host = *physical_.memory().host_pointer(output, part.size);
            std::fill(host, host + part.size, uint8_t{0});
            return Ok();
          });
      ASSERT_TRUE(made.ok()) << made.error().message;
      ASSERT_EQ(*made, absent);
      apply(run, Backing::kResident, ChangeReason::kFault);
    }
    const bool primary = random_() % 2 == 0;
    uint8_t* base = primary ? physical_.memory().guest_base() : physical_.memory().alias_base();
    const auto byte = static_cast<uint8_t>(1 + random_() % 255);
    for (uint64_t p = run.start.page_number(); p < run.end().page_number(); ++p) {
      base[p * kPageSize] = byte;
      base[p * kPageSize + kPageSize - 1] = byte;
      pages[p].allocated = true;
      pages[p].byte = byte;
    }
  }

  // A VMM read through the Translator: refused for non-resident pages; for resident ones it
  // returns the contents (zero for a hole) and, being a touch, allocates the page.
  void vmm_read(uint64_t page) {
    uint8_t out[1] = {0xff};
    auto read = physical_.read(Ipa(page * kPageSize), out);
    if (pages[page].backing != Backing::kResident) {
      ASSERT_FALSE(read.ok()) << "read of a " << stage2::backing_name(pages[page].backing)
                              << " page succeeded";
      return;
    }
    ASSERT_TRUE(read.ok()) << read.error().message;
    ASSERT_EQ(out[0], pages[page].allocated ? pages[page].byte : 0);
    pages[page].allocated = true;
  }

  GuestPhysical& physical_;
  std::mt19937_64 random_;
};

// The seed: HVMM_TEST_SEED when set, else a fresh random one.
uint64_t test_seed() {
  if (const char* text = std::getenv("HVMM_TEST_SEED"))
    return std::strtoull(text, nullptr, 0);
  return std::random_device{}();
}

// Map, memfd and notifier stream agree with the model after every one of kSteps random steps.
TEST(GuestPageStatesRandom, MapMemfdAndNotifiersFollowTheModel) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(fmt::format("HVMM_TEST_SEED={}", seed));
  auto created = GuestPhysical::create(kRam, "page-state-random", 1);
  ASSERT_TRUE(created.ok()) << created.error().message;
  GuestPhysical& physical = **created;
  EventRecorder recorder;
  Refuser refuser;
  auto watched = physical.notifiers().subscribe(IpaRange{Ipa(0), kRam}, &recorder);
  auto refusing = physical.notifiers().subscribe(IpaRange{Ipa(0), kRam}, &refuser);
  ASSERT_TRUE(watched.ok() && refusing.ok());
  PageStateModel model(physical, seed);
  model.refuser = &refuser;
  for (int step = 0; step < kSteps; ++step) {
    SCOPED_TRACE(fmt::format("step {}", step));
    model.step();
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    model.check(physical);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    ASSERT_EQ(recorder.events, model.expected_events);
    ASSERT_EQ(watched->sequence() % 2, 0u);
    recorder.events.clear();
    model.expected_events.clear();
  }
  const PageCounts counts = physical.page_counts();
  fmt::print("seed {}: {} steps, final pages resident {} ballooned {} reported {}, {} punches\n",
             seed, kSteps, counts[Backing::kResident], counts[Backing::kBallooned],
             counts[Backing::kReported], physical.realization_stats().punches);
}

}  // namespace
}  // namespace hvmm::vmm
