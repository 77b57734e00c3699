// Stage2Map queries: leaf walks, access-flag aging and the human-readable dump.
#include <atomic>

#include "hvmm/stage2/stage2_map.h"
#include "walker.h"

namespace hvmm::stage2 {

void Stage2Map::walk_leaves(IpaRange range, const LeafVisitor& visit) const {
  if (range.empty() || !space_.contains(range))
    return;
  detail::for_each_leaf(
      static_cast<const uint64_t*>(root_), space_.root_level(), 0, range.start.value(),
      range.end().value(),
      [&](const uint64_t& slot, unsigned level, uint64_t base, uint64_t start, uint64_t end) {
        const Descriptor leaf(slot);
        visit(IpaRange{Ipa(start), end - start}, leaf.output() + (start - base), level, leaf);
      });
}

// Aging is a change like any other: break-before-make around clearing AF, so a cached
// translation cannot keep the page looking idle however hot it is (clear_flush_young). The
// clear is an atomic AND because readers may set AF concurrently (mark_young). A range with
// nothing young is left alone and costs no invalidation. A hook that refuses the aging
// leaves the flags set, so the range is still reported young (it was, and still is).
bool Stage2Map::mkold(IpaRange range) {
  if (range.empty() || !space_.contains(range) || !test_young(range))
    return false;
  const Change change{range, ChangeKind::kAge, ChangeReason::kAging};
  if (!start_change("age", change).ok())
    return true;
  detail::for_each_leaf(root_, space_.root_level(), 0, range.start.value(), range.end().value(),
                        [](uint64_t& slot, unsigned, uint64_t, uint64_t, uint64_t) {
                          std::atomic_ref<uint64_t>(slot).fetch_and(~bits::kAccessFlag,
                                                                    std::memory_order_relaxed);
                        });
  for (ChangeHooks* hooks : hooks_)
    hooks->range_updated(change);
  for (ChangeHooks* hooks : hooks_)
    hooks->range_end(change);
  return true;
}

bool Stage2Map::test_young(IpaRange range) const {
  bool young = false;
  walk_leaves(range, [&](IpaRange, HostOffset, unsigned, Descriptor leaf) {
    young |= leaf.valid() && leaf.young();
  });
  return young;
}

// The access-flag fault: safe under the readers' shared lock, like a hardware AF update.
bool Stage2Map::mark_young(Ipa ipa) {
  if (ipa.value() >= space_.size())
    return false;
  bool mapped = false;
  detail::for_each_leaf(root_, space_.root_level(), 0, ipa.value(), ipa.value() + 1,
                        [&](uint64_t& slot, unsigned, uint64_t, uint64_t, uint64_t) {
                          std::atomic_ref<uint64_t>(slot).fetch_or(bits::kAccessFlag,
                                                                   std::memory_order_relaxed);
                          mapped = true;
                        });
  return mapped;
}

std::vector<MappedRange> Stage2Map::mapped_ranges(IpaRange range) const {
  std::vector<MappedRange> runs;
  walk_leaves(range, [&](IpaRange part, HostOffset output, unsigned level, Descriptor leaf) {
    if (!runs.empty()) {
      MappedRange& last = runs.back();
      if (last.range.end() == part.start && last.output + last.range.size == output &&
          last.attributes == leaf.attributes() && last.state == leaf.state() &&
          last.young == leaf.young()) {
        last.range.size += part.size;
        last.largest_level = std::max(last.largest_level, level);
        return;
      }
    }
    runs.push_back(MappedRange{part, output, leaf.attributes(), leaf.state(), leaf.young(), level});
  });
  return runs;
}

std::string MappedRange::to_string() const {
  static constexpr const char* kLevelNames[] = {"4K", "2M", "1G", "512G"};
  return fmt::format("{} -> {} {} {} {} {}{}{}{} {}", range, output,
                     permissions_name(attributes.permissions, attributes.executable),
                     memory_type_name(attributes.memory_type),
                     shareability_name(attributes.shareability), backing_name(state.backing),
                     young ? " young" : "", state.write_tracked ? " write-tracked" : "",
                     state.pinned ? " pinned" : "", kLevelNames[largest_level]);
}

std::string Stage2Map::dump() const {
  std::string text =
      fmt::format("stage-2 map: {}-bit IPA, start level {} ({} root table{}), {} tables\n",
                  space_.ipa_bits(), space_.arm_start_level(), space_.root_tables(),
                  space_.root_tables() > 1 ? "s" : "", table_count_);
  for (const MappedRange& run : mapped_ranges(IpaRange{Ipa(0), space_.size()})) {
    text += "  " + run.to_string() + "\n";
  }
  return text;
}

}  // namespace hvmm::stage2
