// The stage-2 walker: one recursive mechanism that every mutating operation runs twice.
//
// An operation is a policy (map_ops.h) that says, for one entry at one level, whether the
// request conflicts with it, whether it can be applied to the entry as a whole, and what the
// new entry is. The walker supplies everything else:
//   prepare  a read-only pass that finds the first conflict and counts the tables the change
//            needs (for new subtrees and for splitting blocks) without allocating any; entries
//            that do not exist yet are visited as virtual children.
//   commit   applies the change using exactly the prepared tables, splitting blocks and
//            collapsing tables that became empty or uniform; it cannot fail.
// Levels count up from the page level (descriptor.h). Ranges are byte ranges [start, end).
//
// In the phases of Linux's kvm_pgtable_walk: commit descends into a table (table-pre: split a
// partly covered block, create a missing table), applies the policy to whole entries (leaf),
// and after a table's entries collapses it into a block or frees it (table-post).
// for_each_leaf is the leaf phase alone (walks, aging, mark_young); for_each_table_post_order
// is the table-post phase alone (retiring a cleared subtree, freeing every table when the map
// goes away).
//
// Stage2Map::translate() does not use this walker, on purpose: it is the TLB-miss path of every
// VMM access to guest memory (tests/bench/stage2/translate_bench.cc), and for one IPA it needs
// only one relaxed load and one shift-and-mask per level, with no range to clip and no visitor.
// Routing it through for_each_leaf (a one-byte range) was measured at 2-3x the cost of the walk
// (BM_MapTranslate 7 ns → 16-21 ns, BM_TranslateMiss +15 ns): the recursive template is not
// flattened into a loop and keeps the per-level span and clipping arithmetic. Its descriptor
// decoding is the same Descriptor as everywhere else, so only the loop is its own.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "hvmm/stage2/descriptor.h"
#include "hvmm/stage2/table_allocator.h"

namespace hvmm::stage2::detail {

// The address of the table a table descriptor points at.
inline uint64_t* table_of(Descriptor table_descriptor) {
  return reinterpret_cast<uint64_t*>(table_descriptor.address());
}

// Indices of the entries of a table at `level` based at `base` that overlap [start, end).
struct IndexSpan {
  unsigned first;
  unsigned last;  // inclusive
};
inline IndexSpan overlapping_entries(unsigned level, uint64_t base, uint64_t start, uint64_t end) {
  const unsigned shift = level_shift(level);
  return {static_cast<unsigned>((start - base) >> shift),
          static_cast<unsigned>((end - 1 - base) >> shift)};
}

// The child an entry would have at index `index` once split or created: an empty entry has
// empty children, a leaf has leaves of the next level with consecutive output addresses.
inline Descriptor virtual_child(Descriptor parent, unsigned child_level, unsigned index) {
  if (parent.empty())
    return parent;
  return parent.at_level(child_level)
      .with_output(parent.output() + uint64_t{index} * level_size(child_level));
}

// Where prepare stopped: the leaf (or hole) that conflicts with the request.
struct Conflict {
  Descriptor entry;
  unsigned level;
  uint64_t base;   // IPA of the entry's first byte
  uint64_t start;  // the conflicting part of the request
  uint64_t end;
};

// Plan is what prepare produces and commit consumes: the tables to use, the tables to free
// once the TLB no longer references them.
struct Plan {
  std::vector<uint64_t*> reserved;
  std::vector<uint64_t*> retired;

  uint64_t* take() {
    uint64_t* table = reserved.back();
    reserved.pop_back();
    return table;
  }
};

// Count tables and find conflicts for `op` over [start, end) (read-only).
template <typename Op>
class Preparer {
 public:
  explicit Preparer(const Op& op) : op_(op) {}

  // Visit the entries of a real table at `level` based at `base`.
  bool visit_table(const uint64_t* table, unsigned level, uint64_t base, uint64_t start,
                   uint64_t end) {
    const IndexSpan span = overlapping_entries(level, base, start, end);
    if constexpr (requires { op_.pages_allowed(table, span.first, span.last); }) {
      // Page tables never need more tables: only conflicts matter, and when the policy can
      // rule them out for the whole span at once the entries need no visit.
      if (level == kPageLevel && op_.pages_allowed(table, span.first, span.last))
        return true;
    }
    for (unsigned i = span.first; i <= span.last; ++i) {
      const uint64_t entry_base = base + uint64_t{i} * level_size(level);
      if (!visit_entry(Descriptor(table[i]), level, entry_base, std::max(start, entry_base),
                       std::min(end, entry_base + level_size(level)))) {
        return false;
      }
    }
    return true;
  }

  size_t tables() const { return tables_; }
  const std::optional<Conflict>& conflict() const { return conflict_; }

 private:
  // Visit one entry (real or virtual) of which [start, end) is requested.
  bool visit_entry(Descriptor entry, unsigned level, uint64_t base, uint64_t start, uint64_t end) {
    if (entry.is_table(level)) {
      return visit_table(table_of(entry), level - 1, base, start, end);
    }
    if (!op_.allows(entry, level, base, start, end)) {
      conflict_ = Conflict{entry, level, base, start, end};
      return false;
    }
    const bool whole = start == base && end == base + level_size(level);
    if (whole && op_.applies_whole(entry, level, base))
      return true;
    if (level == kPageLevel || op_.skips(entry))
      return true;
    ++tables_;
    return visit_virtual_children(entry, level - 1, base, start, end);
  }

  // Children of a split or new table: the first and last may be partial, the middle ones are
  // covered whole and, being alike, need the same number of tables each.
  bool visit_virtual_children(Descriptor parent, unsigned level, uint64_t base, uint64_t start,
                              uint64_t end) {
    const IndexSpan span = overlapping_entries(level, base, start, end);
    const uint64_t size = level_size(level);
    auto visit_child = [&](unsigned i) {
      const uint64_t child_base = base + uint64_t{i} * size;
      return visit_entry(virtual_child(parent, level, i), level, child_base,
                         std::max(start, child_base), std::min(end, child_base + size));
    };
    if (!visit_child(span.first))
      return false;
    if (span.last == span.first)
      return true;
    if (span.last > span.first + 1) {
      const size_t before = tables_;
      if (!visit_child(span.first + 1))
        return false;
      tables_ += (tables_ - before) * (span.last - span.first - 2);
    }
    return visit_child(span.last);
  }

  const Op& op_;
  size_t tables_ = 0;
  std::optional<Conflict> conflict_;
};

// Apply `op` over [start, end) with the tables of a prepared Plan (cannot fail).
template <typename Op>
class Committer {
 public:
  Committer(const Op& op, Plan& plan, unsigned max_block_level, size_t& table_count)
      : op_(op), plan_(plan), max_block_level_(max_block_level), table_count_(table_count) {}

  void commit_table(uint64_t* table, unsigned level, uint64_t base, uint64_t start, uint64_t end) {
    const IndexSpan span = overlapping_entries(level, base, start, end);
    const uint64_t size = level_size(level);
    for (unsigned i = span.first; i <= span.last; ++i) {
      const uint64_t entry_base = base + uint64_t{i} * size;
      commit_entry(table[i], level, entry_base, std::max(start, entry_base),
                   std::min(end, entry_base + size));
    }
  }

 private:
  void commit_entry(uint64_t& slot, unsigned level, uint64_t base, uint64_t start, uint64_t end) {
    const Descriptor entry(slot);
    const bool whole = start == base && end == base + level_size(level);
    if (entry.is_table(level)) {
      if (whole && Op::kClearsWholeTables) {
        retire_subtree(entry, level);
        slot = 0;
        return;
      }
      commit_table(table_of(entry), level - 1, base, start, end);
      collapse(slot, level);
      return;
    }
    if (whole && op_.applies_whole(entry, level, base)) {
      slot = op_.apply(entry, level, base).raw();
      return;
    }
    if (level == kPageLevel || op_.skips(entry))
      return;
    uint64_t* child = plan_.take();
    ++table_count_;
    slot = Descriptor::table(reinterpret_cast<uint64_t>(child)).raw();
    if (entry.empty()) {
      commit_fresh_table(child, level - 1, base, start, end);
    } else {
      split_into(child, entry, level - 1);
      commit_table(child, level - 1, base, start, end);
    }
    collapse(slot, level);
  }

  // Commit into a table that was empty: a policy that can fill fresh page tables in one
  // tight loop (mapping 1 GiB of pages writes 262144 of them) does so.
  void commit_fresh_table(uint64_t* table, unsigned level, uint64_t base, uint64_t start,
                          uint64_t end) {
    if constexpr (requires { op_.fill_fresh_pages(table, base, start, end); }) {
      if (level == kPageLevel) {
        op_.fill_fresh_pages(table, base, start, end);
        return;
      }
    }
    commit_table(table, level, base, start, end);
  }

  // Fill a fresh table with the leaves that together translate exactly like `leaf`.
  static void split_into(uint64_t* table, Descriptor leaf, unsigned level) {
    for (unsigned i = 0; i < kEntriesPerTable; ++i) {
      table[i] = virtual_child(leaf, level, i).raw();
    }
  }

  // Replace the table under `slot` (at `level`) by nothing when it became empty, or by one
  // block when its leaves became uniform and contiguous and a block is allowed there.
  void collapse(uint64_t& slot, unsigned level) {
    const uint64_t* table = table_of(Descriptor(slot));
    if (Op::kMayEmptyTables && is_empty(table)) {
      retire(Descriptor(slot));
      slot = 0;
      return;
    }
    if (level > max_block_level_)
      return;
    const std::optional<Descriptor> block = uniform_block(table, level);
    if (!block)
      return;
    retire(Descriptor(slot));
    slot = block->raw();
  }

  static bool is_empty(const uint64_t* table) {
    return std::all_of(table, table + kEntriesPerTable, [](uint64_t e) { return e == 0; });
  }

  // The block at `level` equivalent to `table`'s leaves, if there is one.
  static std::optional<Descriptor> uniform_block(const uint64_t* table, unsigned level) {
    const Descriptor first(table[0]);
    const unsigned child_level = level - 1;
    if (!first.is_leaf(child_level) || !is_aligned(first.address(), level_size(level))) {
      return std::nullopt;
    }
    const uint64_t same_bits = first.raw() & ~bits::kAddressMask;
    for (unsigned i = 1; i < kEntriesPerTable; ++i) {
      const uint64_t expected = first.address() + uint64_t{i} * level_size(child_level);
      if ((table[i] & ~bits::kAddressMask) != same_bits ||
          (table[i] & bits::kAddressMask) != expected) {
        return std::nullopt;
      }
    }
    return first.at_level(level);
  }

  // Queue the table under `table_descriptor` (an entry at `level`) and every table below it
  // for freeing, children first.
  void retire_subtree(Descriptor table_descriptor, unsigned level);

  void retire(Descriptor table_descriptor) {
    plan_.retired.push_back(table_of(table_descriptor));
    --table_count_;
  }

  const Op& op_;
  Plan& plan_;
  unsigned max_block_level_;
  size_t& table_count_;
};

// The table-post phase alone: call post(table_descriptor, level) for every table below `table`
// (a table at `level` with `entries` entries), where `level` is that of the table pointed at,
// each only after every table below it, so `post` may free the table it is given. A page
// table holds no tables, so it is not scanned.
template <typename Post>
void for_each_table_post_order(const uint64_t* table, unsigned level, unsigned entries,
                               Post&& post) {
  if (level == kPageLevel)
    return;
  for (unsigned i = 0; i < entries; ++i) {
    const Descriptor entry(table[i]);
    if (!entry.is_table(level))
      continue;
    for_each_table_post_order(table_of(entry), level - 1, kEntriesPerTable, post);
    post(entry, level - 1);
  }
}

template <typename Op>
void Committer<Op>::retire_subtree(Descriptor table_descriptor, unsigned level) {
  for_each_table_post_order(table_of(table_descriptor), level - 1, kEntriesPerTable,
                            [this](Descriptor table, unsigned) { retire(table); });
  retire(table_descriptor);
}

// Call fn(slot, level, base, start, end) for every leaf slot overlapping [start, end) below
// `table`, in IPA order; `Slot` is uint64_t or const uint64_t. Holes are skipped.
template <typename Slot, typename Fn>
void for_each_leaf(Slot* table, unsigned level, uint64_t base, uint64_t start, uint64_t end,
                   Fn&& fn) {
  const IndexSpan span = overlapping_entries(level, base, start, end);
  const uint64_t size = level_size(level);
  for (unsigned i = span.first; i <= span.last; ++i) {
    const Descriptor entry(std::atomic_ref<Slot>(table[i]).load(std::memory_order_relaxed));
    if (entry.empty())
      continue;
    const uint64_t entry_base = base + uint64_t{i} * size;
    const uint64_t part_start = std::max(start, entry_base);
    const uint64_t part_end = std::min(end, entry_base + size);
    if (entry.is_table(level)) {
      for_each_leaf(static_cast<Slot*>(table_of(entry)), level - 1, entry_base, part_start,
                    part_end, fn);
    } else {
      fn(table[i], level, entry_base, part_start, part_end);
    }
  }
}

}  // namespace hvmm::stage2::detail
