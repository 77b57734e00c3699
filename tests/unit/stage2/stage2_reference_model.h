// A reference model of a stage-2 map for the differential test: runs of pages, no tables.
//
// The model holds maximal runs of mapped pages: within a run every page has the same
// attributes, state and access flag, and output addresses are contiguous (output = IPA +
// delta). It implements Stage2Map's contract (stage2_map.h) from its text, including the
// rejection of malformed requests, and it derives the leaf structure a canonical map must
// have: an aligned 2 MiB or 1 GiB region is one block exactly when it lies inside one run
// whose output is aligned to the block size (and blocks of that size are allowed).
#pragma once

#include <cstdint>
#include <iterator>
#include <map>
#include <optional>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/stage2/attributes.h"

namespace hvmm::stage2::test {

// Bytes an entry at hvmm `level` spans with a 4 KiB granule (ARM ARM D8.2: 9 bits a level).
constexpr uint64_t model_level_size(unsigned level) {
  return uint64_t{4096} << (9 * level);
}

// One run of pages [start, end) with uniform contents.
struct Run {
  uint64_t end;
  uint64_t delta;  // output - IPA (modulo 2^64)
  Attributes attributes;
  PageState state;
  bool young;

  // Whether a run ending at this one's start continues into `next` as one run.
  bool joins(const Run& next) const {
    return delta == next.delta && attributes == next.attributes && state == next.state &&
           young == next.young;
  }
};

// The leaf a canonical map uses for an IPA: its base, level and run.
struct ModelLeaf {
  uint64_t base;
  unsigned level;  // hvmm numbering: 0 page, 1 2 MiB, 2 1 GiB
  uint64_t run_start;
  Run run;
};

class ReferenceModel {
 public:
  using Runs = std::map<uint64_t, Run>;  // by start

  ReferenceModel(unsigned ipa_bits, unsigned max_block_level)
      : ipa_size_(uint64_t{1} << ipa_bits), max_block_level_(max_block_level) {}

  // The contract's checks on a range, in the order the header lists them.
  std::optional<ErrorCode> check_range(IpaRange r) const {
    if (r.size == 0 || r.start.value() % kPageSize != 0 || r.size % kPageSize != 0 ||
        r.overflows()) {
      return ErrorCode::kInvalidArgument;
    }
    if (r.end().value() > ipa_size_)
      return ErrorCode::kOutOfRange;
    return std::nullopt;
  }

  // map(): the output must be page aligned and output + size must stay within 2^48; a
  // mapped page may only be remapped to the output it has (its attributes and AF change,
  // its state is kept).
  std::optional<ErrorCode> map(IpaRange r, uint64_t output, const Attributes& attrs, bool young) {
    if (auto bad = check_range(r))
      return bad;
    if (output % kPageSize != 0 || output + r.size < output || output + r.size > kOutputLimit)
      return ErrorCode::kInvalidArgument;
    const uint64_t start = r.start.value(), end = r.end().value();
    const uint64_t delta = output - start;
    for (auto it = first_overlapping(start); it != runs_.end() && it->first < end; ++it) {
      if (it->second.delta != delta)
        return ErrorCode::kAlreadyExists;
    }
    split_at(start);
    split_at(end);
    uint64_t cursor = start;
    for (auto it = runs_.lower_bound(start); cursor < end;) {
      if (it == runs_.end() || it->first > cursor) {  // a hole up to the next run
        const uint64_t hole_end = it == runs_.end() ? end : std::min(end, it->first);
        runs_.emplace_hint(it, cursor, Run{hole_end, delta, attrs, PageState{}, young});
        cursor = hole_end;
        continue;
      }
      it->second.attributes = attrs;
      it->second.young = young;
      cursor = it->second.end;
      ++it;
    }
    merge(start, end);
    return std::nullopt;
  }

  // unmap(): holes are allowed, pinned pages refuse the whole request.
  std::optional<ErrorCode> unmap(IpaRange r) {
    if (auto bad = check_range(r))
      return bad;
    const uint64_t start = r.start.value(), end = r.end().value();
    for (auto it = first_overlapping(start); it != runs_.end() && it->first < end; ++it) {
      if (it->second.state.pinned)
        return ErrorCode::kFailedPrecondition;
    }
    split_at(start);
    split_at(end);
    runs_.erase(runs_.lower_bound(start), runs_.lower_bound(end));
    return std::nullopt;
  }

  // protect(): every page must be mapped.
  std::optional<ErrorCode> protect(IpaRange r, Permissions permissions, bool executable) {
    if (auto bad = check_range(r))
      return bad;
    if (!covered(r))
      return ErrorCode::kFailedPrecondition;
    update(r, [&](Run& run) {
      run.attributes.permissions = permissions;
      run.attributes.executable = executable;
    });
    return std::nullopt;
  }

  // set_page_state(): every page must be mapped; a pinned page must stay resident.
  std::optional<ErrorCode> set_page_state(IpaRange r, const PageStateUpdate& u) {
    if (auto bad = check_range(r))
      return bad;
    if (!covered(r))
      return ErrorCode::kFailedPrecondition;
    for (auto it = first_overlapping(r.start.value());
         it != runs_.end() && it->first < r.end().value(); ++it) {
      const PageState next = u.apply(it->second.state);
      if (next.pinned && next.backing != Backing::kResident)
        return ErrorCode::kFailedPrecondition;
    }
    update(r, [&](Run& run) { run.state = u.apply(run.state); });
    return std::nullopt;
  }

  // The run containing `ipa`, or end().
  Runs::const_iterator run_at(uint64_t ipa) const {
    auto it = runs_.upper_bound(ipa);
    if (it == runs_.begin())
      return runs_.end();
    --it;
    return ipa < it->second.end ? it : runs_.end();
  }

  // The leaf of a canonical map containing `ipa`, or nullopt for a hole.
  std::optional<ModelLeaf> leaf_at(uint64_t ipa) const {
    const auto it = run_at(ipa);
    if (it == runs_.end())
      return std::nullopt;
    for (unsigned level = max_block_level_; level > 0; --level) {
      const uint64_t size = model_level_size(level);
      const uint64_t base = align_down(ipa, size);
      if (block_fits(it->first, it->second, base, size))
        return ModelLeaf{base, level, it->first, it->second};
    }
    return ModelLeaf{align_down(ipa, kPageSize), 0, it->first, it->second};
  }

  // Whether [base, base + size) is one leaf of `run` (starting at `run_start`).
  static bool block_fits(uint64_t run_start, const Run& run, uint64_t base, uint64_t size) {
    return run_start <= base && base + size <= run.end && is_aligned(base + run.delta, size);
  }

  const Runs& runs() const { return runs_; }
  unsigned max_block_level() const { return max_block_level_; }

 private:
  static constexpr uint64_t kOutputLimit = uint64_t{1} << 48;

  // The first run that ends after `ipa`.
  Runs::iterator first_overlapping(uint64_t ipa) {
    auto it = runs_.upper_bound(ipa);
    if (it != runs_.begin() && std::prev(it)->second.end > ipa)
      --it;
    return it;
  }

  // Make `ipa` a run boundary.
  void split_at(uint64_t ipa) {
    auto it = runs_.upper_bound(ipa);
    if (it == runs_.begin())
      return;
    --it;
    if (it->first == ipa || it->second.end <= ipa)
      return;
    Run tail = it->second;
    it->second.end = ipa;
    runs_.emplace(ipa, tail);
  }

  // Whether every page of `r` is mapped.
  bool covered(IpaRange r) const {
    uint64_t cursor = r.start.value();
    for (auto it = run_at(cursor); it != runs_.end() && it->first <= cursor;
         it = runs_.find(cursor)) {
      cursor = it->second.end;
      if (cursor >= r.end().value())
        return true;
    }
    return false;
  }

  // Apply `fn` to the runs inside `r` (which is covered), then restore maximal runs.
  template <typename Fn>
  void update(IpaRange r, Fn&& fn) {
    split_at(r.start.value());
    split_at(r.end().value());
    for (auto it = runs_.lower_bound(r.start.value());
         it != runs_.end() && it->first < r.end().value(); ++it)
      fn(it->second);
    merge(r.start.value(), r.end().value());
  }

  // Join adjacent alike runs from the one before `start` to the one after `end`.
  void merge(uint64_t start, uint64_t end) {
    auto it = runs_.lower_bound(start);
    if (it != runs_.begin())
      --it;
    while (it != runs_.end() && it->first <= end) {
      auto next = std::next(it);
      if (next != runs_.end() && it->second.end == next->first && it->second.joins(next->second)) {
        it->second.end = next->second.end;
        runs_.erase(next);
        continue;
      }
      it = next;
    }
  }

  uint64_t ipa_size_;
  unsigned max_block_level_;
  Runs runs_;
};

}  // namespace hvmm::stage2::test
