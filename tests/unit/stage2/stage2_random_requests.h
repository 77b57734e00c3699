// The random request stream of the stage-2 differential test (stage2_map_random_test.cc):
// what a request is, and how the next one is drawn from the run's generator and the reference
// model's current contents. Mostly well-formed requests over the window [0, 4 GiB), with
// page-granular ones near the hot boundaries at 1, 2 and 3 GiB, malformed ones, live remaps and
// requests that restore whole gigabytes; every draw comes from the one generator the run shares,
// so a seed replays the same stream.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <random>
#include <string>

#include "hvmm/base/address.h"
#include "hvmm/base/format.h"
#include "hvmm/stage2/attributes.h"
#include "stage2_reference_model.h"

namespace hvmm::stage2::test {

// The IPA space of the test and its window, and where page-granular requests go.
constexpr unsigned kIpaBits = 40;
constexpr uint64_t kPage = uint64_t{4} << 10;
constexpr uint64_t k2M = uint64_t{2} << 20;
constexpr uint64_t k1G = uint64_t{1} << 30;
constexpr uint64_t kIpaSize = uint64_t{1} << kIpaBits;
constexpr uint64_t kWindowEnd = 4 * k1G;
constexpr uint64_t kHotBoundaries[] = {1 * k1G, 2 * k1G, 3 * k1G};
constexpr uint64_t kHotReachPages = (uint64_t{8} << 20) / kPage;

// What a request does.
enum class Verb { kMap, kUnmap, kProtect, kSetState };

// One request of the random stream, applied to the model and to the map alike.
struct Request {
  Verb verb = Verb::kMap;
  IpaRange range;
  uint64_t output = 0;
  Attributes attributes;
  bool young = true;
  Permissions permissions = Permissions::kReadWrite;
  bool executable = true;
  PageStateUpdate update;
  const char* defect = "";  // why a deliberately malformed request is malformed

  // "map [0x1000, 0x3000) -> 0x1000 old (live remap)": the request for failure messages.
  std::string describe() const {
    static constexpr const char* kVerbs[] = {"map", "unmap", "protect", "set_page_state"};
    std::string text = fmt::format("{} {}", kVerbs[static_cast<int>(verb)], range);
    if (verb == Verb::kMap)
      text += fmt::format(" -> {:#x}{}", output, young ? "" : " old");
    if (*defect != '\0')
      text += fmt::format(" ({})", defect);
    return text;
  }
};

// Draws the requests of one run from the run's generator, shaped by what the model maps now.
class RequestGenerator {
 public:
  // `rng` and `model` belong to the run and must outlive the generator; `wide_requests` adds
  // whole gigabytes and 2 MiB requests anywhere in the window.
  RequestGenerator(std::mt19937_64& rng, const ReferenceModel& model, bool wide_requests)
      : rng_(rng), model_(model), wide_requests_(wide_requests) {}

  // Mostly well-formed requests (which may still conflict), some malformed, some remaps of
  // live pages to another output.
  Request random_request() {
    const unsigned pick = static_cast<unsigned>(rng_() % 100);
    if (pick < 10)
      return malformed_request();
    if (pick < 16 && !model_.runs().empty())
      return live_remap_request();
    if (pick < 22 && wide_requests_)
      return restoring_request();
    bool page_granular = false;
    Request r;
    r.range = random_range(page_granular);
    const unsigned verb = static_cast<unsigned>(rng_() % 100);
    if (verb < 38) {
      r.verb = Verb::kMap;
      r.output = random_output(r.range, page_granular);
      r.attributes = random_attributes();
      r.young = rng_() % 4 != 0;
    } else if (verb < 60) {
      r.verb = Verb::kUnmap;
    } else if (verb < 75) {
      r.verb = Verb::kProtect;
      maybe_inside_a_run(r.range);
      r.permissions = static_cast<Permissions>(rng_() % 4);
      r.executable = rng_() % 2 == 0;
    } else {
      r.verb = Verb::kSetState;
      r.update = random_update();
      maybe_inside_a_run(r.range);
    }
    return r;
  }

 private:
  // Half the time, clip `range` to the first mapped run it overlaps, so that requests that
  // need every page mapped are accepted often enough to change the map. Run boundaries have
  // the granularity of the requests that made them, so the clipped range keeps it.
  void maybe_inside_a_run(IpaRange& range) {
    if (rng_() % 2 == 0)
      return;
    const uint64_t start = range.start.value(), end = range.end().value();
    auto run = model_.run_at(start);
    if (run == model_.runs().end())
      run = model_.runs().lower_bound(start);
    if (run == model_.runs().end() || run->first >= end)
      return;
    const uint64_t clipped_start = std::max(start, run->first);
    range = IpaRange{Ipa(clipped_start), std::min(end, run->second.end) - clipped_start};
  }

  // Page-granular near the hot boundaries; 2 MiB-granular anywhere (or near them, when wide
  // requests are off); whole gigabytes; ranges straddling a gigabyte boundary.
  IpaRange random_range(bool& page_granular) {
    const unsigned pick = static_cast<unsigned>(rng_() % 100);
    const uint64_t hot = kHotBoundaries[rng_() % std::size(kHotBoundaries)];
    if (pick < 50) {
      static constexpr uint64_t kSizes[] = {1, 1, 2, 3, 7, 64, 255, 256, 511, 512, 513, 1024, 1536};
      page_granular = true;
      uint64_t start = hot / kPage - kHotReachPages + rng_() % (2 * kHotReachPages);
      if (rng_() % 2 == 0)
        start &= ~uint64_t{511};
      return IpaRange{Ipa(start * kPage), kSizes[rng_() % std::size(kSizes)] * kPage};
    }
    if (pick < 78 || !wide_requests_) {
      static constexpr uint64_t kBlocks[] = {1, 1, 2, 3, 8};
      const uint64_t start =
          wide_requests_ ? rng_() % (kWindowEnd / k2M) * k2M : hot - 8 * k2M + rng_() % 16 * k2M;
      return IpaRange{Ipa(start), kBlocks[rng_() % std::size(kBlocks)] * k2M};
    }
    if (pick < 90) {
      const uint64_t start = rng_() % 4 * k1G;
      return IpaRange{Ipa(start), std::min<uint64_t>(1 + rng_() % 2, 4 - start / k1G) * k1G};
    }
    const uint64_t before = (1 + rng_() % 4) * (rng_() % 2 ? k2M : kPage);
    const uint64_t after = (1 + rng_() % 4) * (rng_() % 2 ? k2M : kPage);
    page_granular = true;
    return IpaRange{Ipa(hot - before), before + after};
  }

  // The output keeps the delta of what is mapped at the start (so remaps are accepted) or
  // takes a fixed delta: 0 and 1 GiB keep every block alignment, 2 MiB only 2 MiB blocks,
  // page deltas none (only near the hot boundaries, to bound the number of page tables).
  uint64_t random_output(IpaRange range, bool page_granular) {
    const uint64_t start = range.start.value();
    const unsigned pick = static_cast<unsigned>(rng_() % 100);
    if (const auto run = model_.run_at(start); run != model_.runs().end() && pick < 75)
      return start + run->second.delta;
    if (pick < 75)
      return start;
    if (page_granular && pick < 88)
      return start + (rng_() % 2 ? 1 : 3) * kPage;
    return start + (rng_() % 2 ? k2M : k1G);
  }

  // Mostly RAM (so neighbours coalesce), otherwise any encodable combination.
  Attributes random_attributes() {
    if (rng_() % 3 != 0)
      return kRamAttributes;
    static constexpr MemoryType kTypes[] = {MemoryType::kDeviceNGnRnE, MemoryType::kDeviceNGnRE,
                                            MemoryType::kNormalNonCacheable,
                                            MemoryType::kNormalWriteBack};
    static constexpr Shareability kShares[] = {
        Shareability::kNonShareable, Shareability::kOuterShareable, Shareability::kInnerShareable};
    return Attributes{static_cast<Permissions>(rng_() % 4), kTypes[rng_() % 4], kShares[rng_() % 3],
                      rng_() % 2 == 0};
  }

  // Any combination of state changes, each field set or left alone at random.
  PageStateUpdate random_update() {
    PageStateUpdate u;
    u.set_backing = rng_() % 2 == 0;
    u.backing = rng_() % 2 ? Backing::kResident : static_cast<Backing>(1 + rng_() % 3);
    u.set_write_tracked = rng_() % 3 == 0;
    u.write_tracked = rng_() % 2 == 0;
    u.set_pinned = rng_() % 4 == 0;
    u.pinned = rng_() % 4 == 0;
    return u;
  }

  // Undo what keeps a gigabyte from being one block again: reset the state of the whole
  // gigabyte (or of one pinned run in it: pins block unmaps), unmap it, or map it as RAM at
  // the output of its first page. Without these the random stream would seldom undo every
  // split of a gigabyte, and 1 GiB blocks would stop re-forming once pins accumulate.
  Request restoring_request() {
    static constexpr PageStateUpdate kReset{.set_backing = true,
                                            .backing = Backing::kResident,
                                            .set_write_tracked = true,
                                            .write_tracked = false,
                                            .set_pinned = true,
                                            .pinned = false};
    Request r;
    r.range = IpaRange{Ipa(rng_() % (kWindowEnd / k1G) * k1G), k1G};
    switch (rng_() % 4) {
      case 0:
        r.verb = Verb::kSetState;
        r.update = kReset;
        break;
      case 1:
        r.verb = Verb::kSetState;
        r.update = kReset;
        for (auto it = model_.runs().lower_bound(r.range.start.value());
             it != model_.runs().end() && it->first < r.range.end().value(); ++it) {
          if (it->second.state.pinned) {
            r.range = IpaRange{Ipa(it->first), it->second.end - it->first};
            break;
          }
        }
        break;
      case 2:
        r.verb = Verb::kUnmap;
        break;
      default: {
        r.verb = Verb::kMap;
        const auto run = model_.run_at(r.range.start.value());
        r.output = r.range.start.value() + (run != model_.runs().end() ? run->second.delta : 0);
        r.attributes = kRamAttributes;
        break;
      }
    }
    return r;
  }

  // A request with exactly one defect of the contract's list.
  Request malformed_request() {
    bool page_granular = false;
    Request r;
    r.range = random_range(page_granular);
    r.verb = static_cast<Verb>(rng_() % 4);
    r.output = r.range.start.value();
    r.update = random_update();
    const uint64_t k = 1 + rng_() % 4;
    switch (rng_() % 8) {
      case 0:
        r.range.start = r.range.start + uint64_t{(rng_() % 2) ? 0x800u : 0x1u};
        r.defect = "misaligned start";
        break;
      case 1:
        r.range.size += rng_() % 2 ? 0x7ff : 0x1;
        r.defect = "misaligned size";
        break;
      case 2:
        r.range.size = 0;
        r.defect = "empty";
        break;
      case 3:
        r.range = IpaRange{Ipa(0 - k * kPage), (k + rng_() % 3) * kPage};
        r.defect = "overflowing";
        break;
      case 4:
        r.range = rng_() % 2
                      ? IpaRange{Ipa(kIpaSize - (k - 1) * kPage), (k + rng_() % 3) * kPage}
                      : IpaRange{Ipa(kIpaSize + rng_() % (uint64_t{1} << 44) * kPage), kPage};
        r.defect = "beyond the IPA space";
        break;
      case 5:
        r.verb = Verb::kMap;
        r.output += rng_() % 2 ? 0x10 : 0x800;
        r.defect = "misaligned output";
        break;
      case 6:
        r.verb = Verb::kMap;
        r.output = (uint64_t{1} << 48) - (rng_() % (r.range.size / kPage)) * kPage;
        r.defect = "output beyond 2^48";
        break;
      default:
        r.verb = Verb::kMap;
        r.output = 0 - (rng_() % (r.range.size / kPage) + 1) * kPage;
        r.defect = "output overflows";
        break;
    }
    return r;
  }

  // Remap part of a live run to an output other than its own: always refused.
  Request live_remap_request() {
    auto run = model_.runs().begin();
    std::advance(run, static_cast<long>(rng_() % model_.runs().size()));
    const uint64_t pages = (run->second.end - run->first) / kPage;
    const uint64_t start = run->first + rng_() % pages * kPage;
    static constexpr uint64_t kShifts[] = {kPage, 5 * kPage, k2M, k1G};
    Request r;
    r.verb = Verb::kMap;
    r.range = IpaRange{Ipa(start), (1 + rng_() % 600) * kPage};
    r.output = start + run->second.delta + kShifts[rng_() % std::size(kShifts)];
    r.attributes = random_attributes();
    r.defect = "live remap";
    return r;
  }

  std::mt19937_64& rng_;
  const ReferenceModel& model_;
  bool wide_requests_;
};

}  // namespace hvmm::stage2::test
