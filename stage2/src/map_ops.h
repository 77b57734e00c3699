// The policies of the mutating operations, run by the walker (walker.h).
//
// Each policy answers, for one entry that is empty or a leaf:
//   allows(entry, level, base, start, end)  false when the request conflicts with the entry
//                                           (the walker reports the part [start, end))
//   applies_whole(entry, level, base)       true when the entry can be replaced as a whole
//   apply(entry, level, base)               the replacement
//   skips(entry)                            true when a partly covered entry needs no change
// and says whether it may empty tables (collapse them) or clears whole subtrees outright.
// conflict_error() words the Error for the part of `request` that conflicts with `entry`.
#pragma once

#include <cstdint>

#include "hvmm/base/result.h"
#include "hvmm/stage2/attributes.h"
#include "hvmm/stage2/descriptor.h"

namespace hvmm::stage2::detail {

// Map [range.start, ...) to `output` + offset; larger leaves where alignment permits.
struct MapOp {
  static constexpr bool kMayEmptyTables = false;
  static constexpr bool kClearsWholeTables = false;

  uint64_t range_start;
  HostOffset output;
  Attributes attributes;
  bool young;
  unsigned max_block_level;

  // The output address the request gives the byte at IPA `ipa`.
  HostOffset output_at(uint64_t ipa) const { return output + (ipa - range_start); }

  // A mapped leaf may only be remapped to the output address it already has.
  bool allows(Descriptor entry, unsigned level, uint64_t base, uint64_t, uint64_t) const {
    (void)level;
    return entry.empty() || entry.output() == output_at(base);
  }
  bool applies_whole(Descriptor entry, unsigned level, uint64_t base) const {
    if (!entry.empty())
      return true;  // same output (allows), keep its size
    return level <= max_block_level && output_at(base).is_aligned(level_size(level));
  }
  Descriptor apply(Descriptor entry, unsigned level, uint64_t base) const {
    const PageState state = entry.empty() ? PageState{} : entry.state();
    return Descriptor::leaf(level, output_at(base), attributes, state, young);
  }
  bool skips(Descriptor) const { return false; }
  // Write the pages of [start, end) into an empty page table based at `base`: consecutive
  // outputs differ only in the address field, so each leaf is the previous one plus 4 KiB.
  void fill_fresh_pages(uint64_t* table, uint64_t base, uint64_t start, uint64_t end) const {
    const unsigned first = level_index(start - base, kPageLevel);
    const unsigned count = static_cast<unsigned>((end - start) >> kPageShift);
    const uint64_t leaf =
        Descriptor::leaf(kPageLevel, output_at(start), attributes, PageState{}, young).raw();
    for (unsigned i = 0; i < count; ++i)
      table[first + i] = leaf + (uint64_t{i} << kPageShift);
  }
  const char* verb() const { return "map"; }
  Error conflict_error(IpaRange request, IpaRange part, Descriptor entry, uint64_t base) const {
    const HostOffset mapped = entry.output() + (part.start.value() - base);
    return make_error(ErrorCode::kAlreadyExists,
                      "cannot map {} to {}: {} is already mapped to {}, not {}", request, output,
                      part, mapped, output_at(part.start.value()));
  }
};

// Remove mappings; holes are fine, pinned pages are not.
struct UnmapOp {
  static constexpr bool kMayEmptyTables = true;
  static constexpr bool kClearsWholeTables = true;

  bool allows(Descriptor entry, unsigned, uint64_t, uint64_t, uint64_t) const {
    return entry.empty() || !entry.state().pinned;
  }
  bool applies_whole(Descriptor, unsigned, uint64_t) const { return true; }
  Descriptor apply(Descriptor, unsigned, uint64_t) const { return Descriptor(); }
  bool skips(Descriptor entry) const { return entry.empty(); }
  // True when no page in table[first..last] is pinned (one OR over the span).
  bool pages_allowed(const uint64_t* table, unsigned first, unsigned last) const {
    uint64_t any = 0;
    for (unsigned i = first; i <= last; ++i)
      any |= table[i];
    return (any & bits::kPinned) == 0;
  }
  const char* verb() const { return "unmap"; }
  Error conflict_error(IpaRange request, IpaRange part, Descriptor, uint64_t) const {
    return make_error(ErrorCode::kFailedPrecondition, "cannot unmap {}: {} is pinned", request,
                      part);
  }
};

// Change permissions and executability of mapped pages.
struct ProtectOp {
  static constexpr bool kMayEmptyTables = false;
  static constexpr bool kClearsWholeTables = false;

  Permissions permissions;
  bool executable;

  bool allows(Descriptor entry, unsigned, uint64_t, uint64_t, uint64_t) const {
    return !entry.empty();
  }
  bool applies_whole(Descriptor, unsigned, uint64_t) const { return true; }
  Descriptor apply(Descriptor entry, unsigned, uint64_t) const {
    Attributes attrs = entry.attributes();
    attrs.permissions = permissions;
    attrs.executable = executable;
    return entry.with_attributes(attrs);
  }
  bool skips(Descriptor) const { return false; }
  const char* verb() const { return "protect"; }
  Error conflict_error(IpaRange request, IpaRange part, Descriptor, uint64_t) const {
    return make_error(ErrorCode::kFailedPrecondition, "cannot protect {}: {} is not mapped",
                      request, part);
  }
};

// Update the software state of mapped pages; pinned pages stay resident.
struct PageStateOp {
  static constexpr bool kMayEmptyTables = false;
  static constexpr bool kClearsWholeTables = false;

  PageStateUpdate update;

  bool allows(Descriptor entry, unsigned, uint64_t, uint64_t, uint64_t) const {
    if (entry.empty())
      return false;
    const PageState next = update.apply(entry.state());
    return !(next.pinned && next.backing != Backing::kResident);
  }
  bool applies_whole(Descriptor, unsigned, uint64_t) const { return true; }
  Descriptor apply(Descriptor entry, unsigned, uint64_t) const {
    return entry.with_state(update.apply(entry.state()));
  }
  bool skips(Descriptor) const { return false; }
  const char* verb() const { return "set the page state of"; }
  Error conflict_error(IpaRange request, IpaRange part, Descriptor entry, uint64_t) const {
    if (entry.empty()) {
      return make_error(ErrorCode::kFailedPrecondition,
                        "cannot set the page state of {}: {} is not mapped", request, part);
    }
    return make_error(ErrorCode::kFailedPrecondition, "cannot make {} {}: {} is pinned", request,
                      backing_name(update.backing), part);
  }
};

}  // namespace hvmm::stage2::detail
