// Stage2Map: one VM's guest-physical space as an ARMv8-A stage-2 translation table.
//
// The map is the source of truth for the guest-physical space: what the VMM, its devices
// and its tools consult and what users dump. Output addresses are offsets into the VM's host
// memory backing. Operations are short functions over one walker (walker.h); translate(), the
// TLB-miss hot path, is its own loop (walker.h says why).
//
// Contract shared by every mutating operation:
// - Ranges must be page aligned, non-empty, not overflow and lie inside the IPA space.
// - Failure is atomic. A request is first checked and every table it needs is allocated
//   (prepare); only then are descriptors changed (commit), which cannot fail. A rejected
//   request changes nothing and its Error names the range and the reason.
// - Changes follow break-before-make through the registered ChangeHooks (change.h). A hook
//   that refuses a change in range_start makes the operation fail with nothing changed.
// - Blocks (2 MiB, 1 GiB) are split when a change covers part of them, and tables whose
//   entries become uniform again are coalesced back into a block, or freed when empty.
//   Aging (mkold, mark_young) only flips access flags and never restructures: a table that
//   aging made uniform stays a table until the next change of its range.
// - The map is not internally synchronized: callers serialize mutations and exclude readers
//   during them (the VMM holds its memory lock; readers go through the Stage2Tlb).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/stage2/attributes.h"
#include "hvmm/stage2/change.h"
#include "hvmm/stage2/descriptor.h"
#include "hvmm/stage2/ipa_space.h"
#include "hvmm/stage2/table_allocator.h"

namespace hvmm::stage2 {

// Translation is what an IPA resolves to: the leaf that maps it and where it points.
struct Translation {
  HostOffset output;  // host offset of the IPA itself (leaf output + offset in the leaf)
  unsigned level;     // level of the leaf: 0 page, 1 2 MiB block, 2 1 GiB block
  Attributes attributes;
  PageState state;
  bool young;
  Descriptor descriptor;  // the raw leaf
};

// MappedRange is one line of a dump: a maximal run of leaves with identical attributes and
// state whose output addresses are contiguous.
struct MappedRange {
  IpaRange range;
  HostOffset output;
  Attributes attributes;
  PageState state;
  bool young;
  unsigned largest_level;  // largest leaf level seen inside the run

  // "[0x0, 0x40000000) -> 0x0 rwx normal-wb inner resident young 1G"
  std::string to_string() const;
};

// Options a map is created with.
struct MapOptions {
  // Largest leaf the map may create: 0 pages only, 1 up to 2 MiB, 2 up to 1 GiB. The VMM
  // lowers it when the backing cannot provide large pages.
  unsigned max_block_level = kMaxBlockLevel;
};

class Stage2Map {
 public:
  // Make an empty map for `space`, taking tables from `allocator` (which must outlive it).
  static Result<Stage2Map> create(IpaSpace space, TableAllocator& allocator,
                                  MapOptions options = {});
  ~Stage2Map();
  Stage2Map(Stage2Map&& other) noexcept;
  Stage2Map& operator=(Stage2Map&& other) = delete;
  Stage2Map(const Stage2Map&) = delete;
  Stage2Map& operator=(const Stage2Map&) = delete;

  // Register a break-before-make observer; it must outlive the map or be removed first.
  void add_hooks(ChangeHooks& hooks);
  void remove_hooks(ChangeHooks& hooks);

  // Map `range` to host offsets starting at `output`, resident, with `attrs`; young when
  // `young`. Uses the largest blocks alignment allows. Remapping a mapped page to the same
  // output address updates its attributes (its state is kept); to another output address is
  // rejected. `output` must be page aligned and output + size must not overflow.
  Result<void> map(IpaRange range, HostOffset output, const Attributes& attrs,
                   ChangeReason reason = ChangeReason::kMap, bool young = true);

  // Remove every mapping in `range`; holes are allowed. Pinned pages are refused.
  Result<void> unmap(IpaRange range, ChangeReason reason = ChangeReason::kUnmap);

  // Change permissions and executability of every page in `range`, which must be mapped.
  Result<void> protect(IpaRange range, Permissions permissions, bool executable,
                       ChangeReason reason = ChangeReason::kProtect);

  // Update the software state of every page in `range`, which must be mapped. Making a
  // pinned page non-resident (ballooned, reclaimed, reported) is refused. `blockable` false
  // marks a change whose caller cannot wait: a hook may then refuse it (change.h).
  Result<void> set_page_state(IpaRange range, const PageStateUpdate& update,
                              ChangeReason reason = ChangeReason::kPageState,
                              bool blockable = true);

  // Clear the access flag of every leaf that overlaps `range` and return whether any was
  // young (like kvm_age_gfn). Blocks are aged whole, never split: age is a hint.
  bool mkold(IpaRange range);
  // Return whether any leaf overlapping `range` is young, without clearing it.
  bool test_young(IpaRange range) const;
  // Set the access flag of the leaf mapping `ipa` (the access-flag fault resolution).
  // Returns false when `ipa` is not mapped.
  bool mark_young(Ipa ipa);

  // Resolve one IPA; nullopt when nothing maps it. Non-resident pages are returned with
  // their state so a fault handler can tell ballooned from reclaimed from a hole.
  std::optional<Translation> translate(Ipa ipa) const;

  // Call `visit` for each leaf overlapping `range`, in IPA order, with the part of the
  // leaf inside `range` and the output address of that part.
  using LeafVisitor =
      std::function<void(IpaRange part, HostOffset output, unsigned level, Descriptor leaf)>;
  void walk_leaves(IpaRange range, const LeafVisitor& visit) const;

  // Coalesce the leaves in `range` into maximal runs (see MappedRange).
  std::vector<MappedRange> mapped_ranges(IpaRange range) const;
  // The whole map, one line per run, readable by people.
  std::string dump() const;

  const IpaSpace& space() const { return space_; }
  const MapOptions& options() const { return options_; }
  // Tables currently owned by the map, the root ones included.
  size_t table_count() const { return table_count_; }
  // The raw root: root_entries() descriptors (concatenated root tables are contiguous).
  const uint64_t* root() const { return root_; }

 private:
  struct Plan;
  class Walker;

  Stage2Map(IpaSpace space, TableAllocator& allocator, MapOptions options, uint64_t* root);

  Result<void> check_range(const char* verb, IpaRange range) const;
  Result<void> start_change(const char* verb, const Change& change);
  template <typename Commit>
  Result<void> apply(const Change& change, Plan& plan, Commit&& commit);

  IpaSpace space_;
  TableAllocator* allocator_;
  MapOptions options_;
  uint64_t* root_;  // root_tables() contiguous tables
  size_t table_count_;
  std::vector<ChangeHooks*> hooks_;
};

}  // namespace hvmm::stage2
