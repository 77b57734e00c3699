// Randomized differential test: Stage2Map against a reference model of its contents
// (stage2_reference_model.h), read back through the raw tables and translate() only.
//
// A run applies a random stream of requests to both and, after every step, checks that
//   - both accepted, or both rejected with the same error code, whose message names the
//     range; the map's hooks ran once each (accepted) or not at all (rejected);
//   - the raw tables, walked from the root and decoded with the ARM ARM layout re-derived in
//     arm_stage2_layout.h (never with hvmm's decoders), are exactly those of a canonical map
//     of the model's contents: every leaf bit for bit, a table only where the model's
//     contents cannot be one block, zero everywhere else; the map's and the allocator's
//     table counts agree with the tables found;
//   - a rejected request left every reachable table bit-identical;
//   - translate() agrees with the model for random IPAs: inside and outside mapped ranges,
//     at and around 2 MiB and 1 GiB boundaries, inside the request, beyond the IPA space.
// The window is [0, 4 GiB): page-granular requests within 8 MiB of 1, 2 and 3 GiB, 2 MiB
// requests anywhere, whole gigabytes, and outputs that mostly keep block alignment, so pages,
// 2 MiB blocks and 1 GiB blocks meet, split and coalesce (the run counts it and requires it).
// Malformed requests (misaligned, empty, overflowing, beyond the IPA space, bad outputs), live
// remaps to another output and requests that need tables when none are left are part of the
// stream. HVMM_SEED=<n> replays a run; every failure names the seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "arm_stage2_layout.h"
#include "hvmm/stage2/stage2_map.h"
#include "stage2_random_requests.h"
#include "stage2_reference_model.h"

namespace hvmm::stage2::test {
namespace {

// The shape of a run.
struct RunOptions {
  unsigned max_block_level = 2;
  bool wide_requests = true;  // whole gigabytes, and 2 MiB requests anywhere in the window
  int steps = 0;
};

// Counts break-before-make calls, so rejected requests can be shown to have made none.
class CountingHooks : public ChangeHooks {
 public:
  Result<void> range_start(const Change& c) override {
    record(0, c);
    return Ok();
  }
  void range_updated(const Change& c) override { record(1, c); }
  void range_end(const Change& c) override { record(2, c); }
  void reset() { calls = {}; }

  std::array<int, 3> calls{};
  IpaRange last_range;

 private:
  void record(int phase, const Change& c) {
    ++calls[phase];
    last_range = c.range;
  }
};

// "valid=1 page memattr=0xf s2ap=3 sh=3 af=1 oa=0x1000 xn=0 sw=0x0": a raw leaf for people.
std::string describe_raw(uint64_t raw) {
  const ArmLeafFields f = arm_decode(raw);
  return fmt::format(
      "{:#018x} (valid={} {} memattr={:#x} s2ap={} sh={} af={} oa={:#x} xn={} "
      "sw={:#x} other={:#x})",
      raw, f.valid ? 1 : 0, f.page_type ? "page/table" : "block", f.memattr, f.s2ap, f.sh,
      f.af ? 1 : 0, f.output, f.xn, f.software, f.other_bits);
}

// The shape of each 2 MiB and 1 GiB slot of the window, to count splits and coalescing.
enum SlotShape : uint8_t { kHole, kLeaf, kTable, kInsideLargerLeaf };

// What one walk of the raw tables found.
struct RawTables {
  size_t tables = 0;  // root tables included
  // FNV-1a over every entry of every reachable table, depth first: equal before and after a
  // request only if no bit of any table changed (table descriptors carry the tables' addresses).
  uint64_t hash = 0xcbf2'9ce4'8422'2325;
  std::vector<uint8_t> shape_2m = std::vector<uint8_t>(kWindowEnd / k2M, kHole);
  std::vector<uint8_t> shape_1g = std::vector<uint8_t>(kWindowEnd / k1G, kHole);
};

// Split and coalesce events seen between consecutive steps.
struct ShapeStats {
  uint64_t coalesced_2m = 0;  // a page table became a 2 MiB block
  uint64_t coalesced_1g = 0;  // a table became a 1 GiB block
  uint64_t split_2m = 0;
  uint64_t split_1g = 0;
  uint64_t steps_with_1g_block = 0;
  uint64_t steps_with_2m_block = 0;
  uint64_t rejected = 0;
  uint64_t out_of_tables = 0;
};

class DifferentialRun {
 public:
  DifferentialRun(uint64_t seed, RunOptions options)
      : rng_(seed), options_(options), model_(kIpaBits, options.max_block_level) {
    auto space = IpaSpace::create(kIpaBits);
    auto map =
        Stage2Map::create(space.value(), tables_, {.max_block_level = options.max_block_level});
    EXPECT_TRUE(map.ok());
    map_.emplace(std::move(map).value());
    map_->add_hooks(hooks_);
    // The walk below assumes the geometry of a 40-bit space: ARM start level 1 with two
    // concatenated root tables (ARM ARM D8.2.7), i.e. 1024 root entries of 1 GiB.
    EXPECT_EQ(map_->space().root_level(), 2u);
    EXPECT_EQ(map_->space().root_entries(), 1024u);
    previous_ = walk_raw();
  }
  ~DifferentialRun() { map_->remove_hooks(hooks_); }

  // Apply one random request to both sides and check everything; false on a divergence.
  bool step() {
    starved_ = rng_() % 16 == 0;  // no spare table memory for this request
    tables_.set_limit(starved_ ? tables_.tables_in_use() : HeapTableAllocator::kUnlimited);
    const Request request = requests_.random_request();
    what_ = request.describe();
    const std::optional<ReferenceModel> saved =
        starved_ ? std::optional<ReferenceModel>(model_) : std::nullopt;
    const std::optional<ErrorCode> expected = apply(model_, request);
    hooks_.reset();
    const Result<void> actual = apply(*map_, request);
    bool rejected = !actual.ok();
    if (rejected && actual.error().code == ErrorCode::kResourceExhausted && starved_ && !expected) {
      model_ = *saved;  // the map could not get a table: it must have changed nothing
      what_ += " (out of tables)";
      ++stats_.out_of_tables;
    } else if (!outcome_matches(expected, actual)) {
      return false;
    }
    stats_.rejected += rejected ? 1 : 0;
    if (rejected && actual.error().message.find(
                        fmt::format("{:#x}", request.range.start.value())) == std::string::npos)
      return fail("the error does not name the range: " + actual.error().message);
    if (!hooks_match(request, rejected))
      return false;
    RawTables now = walk_raw();
    if (!walk_ok_ || !table_counts_match(now))
      return false;
    if (rejected && now.hash != previous_.hash)
      return fail("a rejected request changed the raw tables");
    if (starved_ && !rejected && now.tables > previous_.tables)
      return fail("the map grew without table memory");
    if (!translations_match(request))
      return false;
    count_shapes(now);
    previous_ = std::move(now);
    return true;
  }

  const std::string& what() const { return what_; }
  const ShapeStats& stats() const { return stats_; }

 private:
  // ---- applying requests ----

  static std::optional<ErrorCode> apply(ReferenceModel& model, const Request& r) {
    switch (r.verb) {
      case Verb::kMap:
        return model.map(r.range, r.output, r.attributes, r.young);
      case Verb::kUnmap:
        return model.unmap(r.range);
      case Verb::kProtect:
        return model.protect(r.range, r.permissions, r.executable);
      case Verb::kSetState:
        return model.set_page_state(r.range, r.update);
    }
    return ErrorCode::kInternal;
  }

  static Result<void> apply(Stage2Map& map, const Request& r) {
    switch (r.verb) {
      case Verb::kMap:
        return map.map(r.range, HostOffset(r.output), r.attributes, ChangeReason::kMap, r.young);
      case Verb::kUnmap:
        return map.unmap(r.range);
      case Verb::kProtect:
        return map.protect(r.range, r.permissions, r.executable);
      case Verb::kSetState:
        return map.set_page_state(r.range, r.update);
    }
    return make_error(ErrorCode::kInternal, "unknown verb");
  }

  // ---- checks ----

  bool fail(const std::string& message) {
    ADD_FAILURE() << what_ << ": " << message;
    return false;
  }

  bool outcome_matches(const std::optional<ErrorCode>& expected, const Result<void>& actual) {
    if (expected.has_value() != !actual.ok() || (expected && *expected != actual.error().code)) {
      return fail(fmt::format("the model says {}, the map says {}",
                              expected ? error_code_name(*expected) : "ok",
                              actual.ok() ? "ok" : actual.error().message));
    }
    return true;
  }

  // Accepted: start, updated and end once each, for the request's range. Rejected: none, and
  // the error names the range's start.
  bool hooks_match(const Request& request, bool rejected) {
    if (rejected) {
      if (hooks_.calls != std::array<int, 3>{})
        return fail("a rejected request ran the change hooks");
      return true;
    }
    if (hooks_.calls != std::array<int, 3>{1, 1, 1} || hooks_.last_range != request.range)
      return fail(fmt::format("hooks ran {}/{}/{} times, last for {}", hooks_.calls[0],
                              hooks_.calls[1], hooks_.calls[2], hooks_.last_range));
    return true;
  }

  // Walk every reachable table from the root, comparing each entry with the model.
  RawTables walk_raw() {
    RawTables raw;
    raw.tables = map_->space().root_tables();
    walk_ok_ = true;
    cursor_ = model_.runs().begin();
    walk_table(raw, map_->root(), map_->space().root_level(), 0, map_->space().root_entries());
    return raw;
  }

  // Fold `entries` entries of `table` into raw.hash. Multiplying by an odd constant is a
  // bijection, so any single changed entry changes the sum; the sum's terms are independent,
  // which keeps this loop fast.
  static void hash_table(RawTables& raw, const uint64_t* table, unsigned entries) {
    uint64_t sum = 0;
    for (unsigned i = 0; i < entries; ++i)
      sum += (table[i] ^ (i * 0x9e37'79b9'7f4a'7c15)) * 0xff51'afd7'ed55'8ccd;
    raw.hash = (raw.hash ^ sum) * 0x0000'0100'0000'01b3;
  }

  // A table whose region lies inside one run and whose entries must all be leaves holds
  // leaves that differ only in their output address: check it in one tight loop (most of a
  // step's work is here). False when the shortcut does not apply or finds a difference; the
  // entry-by-entry walk then decides and words the failure.
  bool table_in_one_run(RawTables& raw, const uint64_t* table, unsigned level, uint64_t base,
                        unsigned entries) {
    const uint64_t size = model_level_size(level);
    if (cursor_ == model_.runs().end() || cursor_->first > base ||
        cursor_->second.end < base + entries * size)
      return false;
    const Run& run = cursor_->second;
    if (level != 0 && (level > options_.max_block_level || !is_aligned(base + run.delta, size)))
      return false;
    const uint64_t first = arm_leaf(level, base + run.delta, run.attributes, run.state, run.young);
    uint64_t differs = 0;
    for (unsigned i = 0; i < entries; ++i)
      differs |= table[i] ^ (first + i * size);
    if (differs != 0)
      return false;
    for (unsigned i = 0; level > 0 && i < entries; ++i)
      record_shape(raw, level, base + i * size, kLeaf);
    return true;
  }

  // The entries from `first` on lie beyond every run: they must all be zero.
  static bool rest_is_empty(const uint64_t* table, unsigned first, unsigned entries) {
    uint64_t any = 0;
    for (unsigned i = first; i < entries; ++i)
      any |= table[i];
    return any == 0;
  }

  void walk_table(RawTables& raw, const uint64_t* table, unsigned level, uint64_t base,
                  unsigned entries) {
    hash_table(raw, table, entries);
    while (cursor_ != model_.runs().end() && cursor_->second.end <= base)
      ++cursor_;
    if (table_in_one_run(raw, table, level, base, entries))
      return;
    const uint64_t size = model_level_size(level);
    const Run* previous_leaf_run = nullptr;
    uint64_t next_leaf = 0;
    for (unsigned i = 0; i < entries && walk_ok_; ++i) {
      const uint64_t entry_base = base + i * size;
      const uint64_t entry = table[i];
      while (cursor_ != model_.runs().end() && cursor_->second.end <= entry_base)
        ++cursor_;
      if (cursor_ == model_.runs().end() && rest_is_empty(table, i, entries))
        return;
      const bool overlaps = cursor_ != model_.runs().end() && cursor_->first < entry_base + size;
      SlotShape shape = kHole;
      if (!overlaps) {
        previous_leaf_run = nullptr;
        if (entry != 0)
          walk_ok_ = fail(fmt::format("the hole at IPA {:#x} (level {}) holds {}", entry_base,
                                      level, describe_raw(entry)));
      } else if (level == 0 ||
                 (level <= options_.max_block_level &&
                  ReferenceModel::block_fits(cursor_->first, cursor_->second, entry_base, size))) {
        // Consecutive leaves of one run differ only in the output address.
        const Run& run = cursor_->second;
        const uint64_t expected =
            &run == previous_leaf_run
                ? next_leaf
                : arm_leaf(level, entry_base + run.delta, run.attributes, run.state, run.young);
        previous_leaf_run = &run;
        next_leaf = expected + size;
        shape = kLeaf;
        if (entry != expected)
          walk_ok_ = fail(fmt::format("the level-{} leaf at IPA {:#x} is {}, expected {}", level,
                                      entry_base, describe_raw(entry), describe_raw(expected)));
      } else {
        previous_leaf_run = nullptr;
        shape = kTable;
        if (!arm_is_table_descriptor(entry) || (entry & kArmOutputMask) == 0) {
          walk_ok_ = fail(fmt::format("IPA {:#x} (level {}) needs a table, found {}", entry_base,
                                      level, describe_raw(entry)));
          return;
        }
        const auto* child = reinterpret_cast<const uint64_t*>(entry & kArmOutputMask);
        ++raw.tables;
        walk_table(raw, child, level - 1, entry_base, 512);
      }
      record_shape(raw, level, entry_base, shape);
    }
  }

  static void record_shape(RawTables& raw, unsigned level, uint64_t base, SlotShape shape) {
    if (base >= kWindowEnd)
      return;
    if (level == 2) {
      raw.shape_1g[base / k1G] = shape;
      if (shape == kLeaf)
        std::fill_n(raw.shape_2m.begin() + static_cast<long>(base / k2M), k1G / k2M,
                    kInsideLargerLeaf);
    } else if (level == 1) {
      raw.shape_2m[base / k2M] = shape;
    }
  }

  bool table_counts_match(const RawTables& raw) {
    if (raw.tables != map_->table_count() ||
        raw.tables != tables_.tables_in_use() + map_->space().root_tables())
      return fail(fmt::format("{} tables reachable, the map counts {}, the allocator lends {}",
                              raw.tables, map_->table_count(), tables_.tables_in_use()));
    return true;
  }

  // translate() for IPAs anywhere in and around the window, at block boundaries, inside the
  // request and beyond the IPA space.
  bool translations_match(const Request& request) {
    static constexpr uint64_t kNudges[] = {0, 1, kPage - 1, kPage, 0 - uint64_t{1}, 0 - kPage};
    const uint64_t boundary =
        rng_() % 2 ? rng_() % (kWindowEnd / k2M + 1) * k2M : rng_() % (kWindowEnd / k1G + 1) * k1G;
    const uint64_t probes[] = {
        rng_() % (kWindowEnd + k1G),
        rng_() % (kWindowEnd + k1G),
        boundary + kNudges[rng_() % std::size(kNudges)],
        boundary + kNudges[rng_() % std::size(kNudges)],
        request.range.start.value() + rng_() % kPage,
        request.range.end().value() - 1,
        kWindowEnd + k1G + rng_() % (kIpaSize - kWindowEnd - k1G),
        rng_() % 2 ? kIpaSize - 1 + rng_() % 2 : kIpaSize + rng_() % kIpaSize,
    };
    for (uint64_t ipa : probes) {
      if (!translation_matches(ipa))
        return false;
    }
    return true;
  }

  bool translation_matches(uint64_t ipa) {
    const std::optional<Translation> actual = map_->translate(Ipa(ipa));
    const std::optional<ModelLeaf> leaf = model_.leaf_at(ipa);
    if (!leaf) {
      if (actual)
        return fail(fmt::format("translate({:#x}) found {} in a hole", ipa,
                                describe_raw(actual->descriptor.raw())));
      return true;
    }
    const Run& run = leaf->run;
    const uint64_t expected_raw =
        arm_leaf(leaf->level, leaf->base + run.delta, run.attributes, run.state, run.young);
    if (!actual)
      return fail(fmt::format("translate({:#x}) found nothing; expected level {} {}", ipa,
                              leaf->level, describe_raw(expected_raw)));
    if (actual->output.value() != ipa + run.delta || actual->level != leaf->level ||
        actual->descriptor.raw() != expected_raw || actual->attributes != run.attributes ||
        actual->state != run.state || actual->young != run.young)
      return fail(fmt::format(
          "translate({:#x}) gave output {:#x} level {} {}; expected output "
          "{:#x} level {} {}",
          ipa, actual->output.value(), actual->level, describe_raw(actual->descriptor.raw()),
          ipa + run.delta, leaf->level, describe_raw(expected_raw)));
    return true;
  }

  // Count splits and coalescing between the previous walk and this one.
  void count_shapes(const RawTables& now) {
    for (size_t i = 0; i < now.shape_1g.size(); ++i) {
      stats_.coalesced_1g += previous_.shape_1g[i] == kTable && now.shape_1g[i] == kLeaf;
      stats_.split_1g += previous_.shape_1g[i] == kLeaf && now.shape_1g[i] == kTable;
    }
    bool any_2m = false;
    for (size_t i = 0; i < now.shape_2m.size(); ++i) {
      stats_.coalesced_2m += previous_.shape_2m[i] == kTable && now.shape_2m[i] == kLeaf;
      stats_.split_2m += previous_.shape_2m[i] == kLeaf && now.shape_2m[i] == kTable;
      any_2m |= now.shape_2m[i] == kLeaf;
    }
    stats_.steps_with_2m_block += any_2m;
    stats_.steps_with_1g_block +=
        std::find(now.shape_1g.begin(), now.shape_1g.end(), kLeaf) != now.shape_1g.end();
  }

  std::mt19937_64 rng_;
  RunOptions options_;
  HeapTableAllocator tables_;
  std::optional<Stage2Map> map_;
  CountingHooks hooks_;
  ReferenceModel model_;
  RequestGenerator requests_{rng_, model_, options_.wide_requests};
  ReferenceModel::Runs::const_iterator cursor_;
  RawTables previous_;
  ShapeStats stats_;
  std::string what_;
  bool starved_ = false;
  bool walk_ok_ = true;
};

uint64_t seed_from_environment(uint64_t fallback) {
  const char* text = std::getenv("HVMM_SEED");
  return text != nullptr ? std::strtoull(text, nullptr, 0) : fallback;
}

// Run `options.steps` steps from `seed`; return the statistics of a run that held.
std::optional<ShapeStats> run(RunOptions options, uint64_t seed) {
  SCOPED_TRACE(fmt::format("seed {:#x} (replay with HVMM_SEED={:#x})", seed, seed));
  DifferentialRun run(seed, options);
  for (int i = 0; i < options.steps; ++i) {
    if (!run.step()) {
      ADD_FAILURE() << "diverged at step " << i << " (" << run.what()
                    << "); replay with HVMM_SEED=" << fmt::format("{:#x}", seed);
      return std::nullopt;
    }
  }
  const ShapeStats& s = run.stats();
  fmt::print(
      "{} steps: {} rejected ({} out of tables); coalesced {} x 2M, {} x 1G; split {} x 2M, "
      "{} x 1G; a 2 MiB block in {} steps, a 1 GiB block in {}\n",
      options.steps, s.rejected, s.out_of_tables, s.coalesced_2m, s.coalesced_1g, s.split_2m,
      s.split_1g, s.steps_with_2m_block, s.steps_with_1g_block);
  return s;
}

// The sanitizers slow the walk down several times; the regular build does the full run.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kMainSteps = 30000;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr int kMainSteps = 30000;
#else
constexpr int kMainSteps = 100000;
#endif
#else
constexpr int kMainSteps = 100000;
#endif

// Pages, 2 MiB and 1 GiB blocks over [0, 4 GiB): every step agrees with the model, and
// blocks of both sizes really are split and coalesced.
TEST(Stage2MapRandomTest, PagesAndBothBlockSizesAgreeWithModel) {
  const auto stats =
      run({.max_block_level = 2, .steps = kMainSteps}, seed_from_environment(0x2024'0001));
  ASSERT_TRUE(stats.has_value());
  constexpr auto kSteps = static_cast<uint64_t>(kMainSteps);
  EXPECT_GT(stats->coalesced_2m, kSteps / 100);
  EXPECT_GT(stats->coalesced_1g, kSteps / 1000);
  EXPECT_GT(stats->split_2m, kSteps / 100);
  EXPECT_GT(stats->split_1g, kSteps / 1000);
  EXPECT_GT(stats->rejected, kSteps / 10);
  EXPECT_GT(stats->out_of_tables, 10u);
}

// Blocks up to 2 MiB: a gigabyte of uniform pages stays 512 blocks in a table.
TEST(Stage2MapRandomTest, TwoMegabyteBlocksAtMostAgreeWithModel) {
  const auto stats =
      run({.max_block_level = 1, .steps = kMainSteps / 5}, seed_from_environment(0x2024'0002));
  ASSERT_TRUE(stats.has_value());
  EXPECT_GT(stats->coalesced_2m, 10u);
  EXPECT_EQ(stats->steps_with_1g_block, 0u);
}

// Pages only (backing without large pages): nothing may ever become a block.
TEST(Stage2MapRandomTest, PagesOnlyAgreeWithModel) {
  const auto stats = run({.max_block_level = 0, .wide_requests = false, .steps = kMainSteps / 5},
                         seed_from_environment(0x2024'0003));
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->steps_with_2m_block, 0u);
  EXPECT_EQ(stats->steps_with_1g_block, 0u);
}

}  // namespace
}  // namespace hvmm::stage2::test
