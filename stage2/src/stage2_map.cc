// Stage2Map: lifecycle, the mutating operations and translation.
#include "hvmm/stage2/stage2_map.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "map_ops.h"
#include "walker.h"

namespace hvmm::stage2 {

struct Stage2Map::Plan : detail::Plan {};

namespace {

// The root's concatenated tables must be contiguous and aligned to their total size
// (ARM ARM D8.2.7), so the root does not come from the per-table allocator.
uint64_t* allocate_root(const IpaSpace& space) {
  const size_t bytes = size_t{space.root_tables()} * kPageSize;
  void* root = std::aligned_alloc(bytes, bytes);
  if (root != nullptr)
    std::memset(root, 0, bytes);
  return static_cast<uint64_t*>(root);
}

// Load a descriptor that a concurrent mark_young() may update (READ_ONCE).
Descriptor load_descriptor(const uint64_t& slot) {
  return Descriptor(std::atomic_ref<const uint64_t>(slot).load(std::memory_order_relaxed));
}

}  // namespace

Result<Stage2Map> Stage2Map::create(IpaSpace space, TableAllocator& allocator, MapOptions options) {
  if (options.max_block_level > kMaxBlockLevel) {
    return make_error(ErrorCode::kInvalidArgument,
                      "max_block_level {} is above the largest stage-2 block level {}",
                      options.max_block_level, kMaxBlockLevel);
  }
  uint64_t* root = allocate_root(space);
  if (root == nullptr) {
    return make_error(ErrorCode::kResourceExhausted, "cannot allocate the {} root table(s)",
                      space.root_tables());
  }
  return Stage2Map(space, allocator, options, root);
}

Stage2Map::Stage2Map(IpaSpace space, TableAllocator& allocator, MapOptions options, uint64_t* root)
    : space_(space),
      allocator_(&allocator),
      options_(options),
      root_(root),
      table_count_(space.root_tables()) {}

Stage2Map::Stage2Map(Stage2Map&& other) noexcept
    : space_(other.space_),
      allocator_(other.allocator_),
      options_(other.options_),
      root_(std::exchange(other.root_, nullptr)),
      table_count_(std::exchange(other.table_count_, 0)),
      hooks_(std::move(other.hooks_)) {}

// The VM is gone: no hooks run (nothing can observe the space any more), pinned pages go too.
Stage2Map::~Stage2Map() {
  if (root_ == nullptr)
    return;
  detail::for_each_table_post_order(
      root_, space_.root_level(), space_.root_entries(),
      [this](Descriptor table, unsigned) { allocator_->free_table(detail::table_of(table)); });
  std::free(root_);
}

void Stage2Map::add_hooks(ChangeHooks& hooks) {
  hooks_.push_back(&hooks);
}

void Stage2Map::remove_hooks(ChangeHooks& hooks) {
  std::erase(hooks_, &hooks);
}

Result<void> Stage2Map::check_range(const char* verb, IpaRange range) const {
  if (range.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "cannot {} {}: the range is empty", verb, range);
  }
  if (!range.start.is_aligned(kPageSize) || !is_aligned(range.size, kPageSize)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "cannot {} {}: start and size must be multiples of 4 KiB", verb, range);
  }
  if (range.overflows()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "cannot {} {:#x} bytes at {}: the range overflows", verb, range.size,
                      range.start);
  }
  if (!space_.contains(range)) {
    return make_error(ErrorCode::kOutOfRange,
                      "cannot {} {}: beyond the {}-bit IPA space (ends at {:#x})", verb, range,
                      space_.ipa_bits(), space_.size());
  }
  return Ok();
}

namespace {

// Reserve `count` tables, all or none.
bool reserve_tables(TableAllocator& allocator, size_t count, detail::Plan& plan) {
  plan.reserved.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    uint64_t* table = allocator.allocate_table();
    if (table == nullptr) {
      for (uint64_t* t : plan.reserved)
        allocator.free_table(t);
      plan.reserved.clear();
      return false;
    }
    plan.reserved.push_back(table);
  }
  return true;
}

}  // namespace

// Step 1 of break-before-make: every hook's range_start, in order. A refusal ends the hooks
// that had started (no range_updated: nothing changed) and becomes the operation's Error.
Result<void> Stage2Map::start_change(const char* verb, const Change& change) {
  for (size_t i = 0; i < hooks_.size(); ++i) {
    Result<void> started = hooks_[i]->range_start(change);
    if (started.ok())
      continue;
    for (size_t j = 0; j < i; ++j)
      hooks_[j]->range_end(change);
    return make_error(started.error().code, "cannot {} {} ({}): refused, nothing changed: {}", verb,
                      change.range, change_reason_name(change.reason), started.error().message);
  }
  return Ok();
}

// Prepare (conflicts, table count, reservation), then break-before-make around the commit.
// A refused start returns the reserved tables: the map is exactly as it was.
template <typename Op>
Result<void> Stage2Map::apply(const Change& change, Plan& plan, Op&& op) {
  const uint64_t start = change.range.start.value();
  const uint64_t end = change.range.end().value();
  const unsigned root_level = space_.root_level();
  detail::Preparer<std::decay_t<Op>> preparer(op);
  if (!preparer.visit_table(root_, root_level, 0, start, end)) {
    const detail::Conflict& c = *preparer.conflict();
    return op.conflict_error(change.range, IpaRange{Ipa(c.start), c.end - c.start}, c.entry,
                             c.base);
  }
  if (!reserve_tables(*allocator_, preparer.tables(), plan)) {
    return make_error(ErrorCode::kResourceExhausted,
                      "cannot {} {}: out of stage-2 table memory ({} more tables needed)",
                      op.verb(), change.range, preparer.tables());
  }
  if (Result<void> started = start_change(op.verb(), change); !started.ok()) {
    for (uint64_t* table : plan.reserved)
      allocator_->free_table(table);
    return started;
  }
  detail::Committer<std::decay_t<Op>> committer(op, plan, options_.max_block_level, table_count_);
  committer.commit_table(root_, root_level, 0, start, end);
  for (ChangeHooks* hooks : hooks_)
    hooks->range_updated(change);
  // Tables unlinked by the commit are freed only now that no TLB entry can refer to them.
  for (uint64_t* table : plan.retired)
    allocator_->free_table(table);
  for (ChangeHooks* hooks : hooks_)
    hooks->range_end(change);
  return Ok();
}

Result<void> Stage2Map::map(IpaRange range, HostOffset output, const Attributes& attrs,
                            ChangeReason reason, bool young) {
  HVMM_TRY(check_range("map", range));
  if (!output.is_aligned(kPageSize) || output.value() + range.size < output.value() ||
      ((output.value() + range.size - 1) >> 48) != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "cannot map {} to {}: the output must be 4 KiB aligned and below 2^48", range,
                      output);
  }
  Plan plan;
  const detail::MapOp op{range.start.value(), output, attrs, young, options_.max_block_level};
  return apply(Change{range, ChangeKind::kMap, reason}, plan, op);
}

Result<void> Stage2Map::unmap(IpaRange range, ChangeReason reason) {
  HVMM_TRY(check_range("unmap", range));
  Plan plan;
  return apply(Change{range, ChangeKind::kUnmap, reason}, plan, detail::UnmapOp{});
}

Result<void> Stage2Map::protect(IpaRange range, Permissions permissions, bool executable,
                                ChangeReason reason) {
  HVMM_TRY(check_range("protect", range));
  Plan plan;
  const detail::ProtectOp op{permissions, executable};
  return apply(Change{range, ChangeKind::kProtect, reason}, plan, op);
}

Result<void> Stage2Map::set_page_state(IpaRange range, const PageStateUpdate& update,
                                       ChangeReason reason, bool blockable) {
  HVMM_TRY(check_range("set the page state of", range));
  Plan plan;
  const detail::PageStateOp op{update};
  return apply(Change{range, ChangeKind::kPageState, reason, blockable}, plan, op);
}

// Walk from the root to the leaf that maps `ipa` (one descriptor read per level). This is the
// TLB-miss hot path; walker.h says why it is its own loop rather than a walk of the walker.
std::optional<Translation> Stage2Map::translate(Ipa ipa) const {
  if (ipa.value() >= space_.size())
    return std::nullopt;
  unsigned level = space_.root_level();
  const uint64_t* table = root_;
  unsigned index = static_cast<unsigned>(ipa.value() >> level_shift(level));
  for (;;) {
    const Descriptor entry = load_descriptor(table[index]);
    if (entry.empty())
      return std::nullopt;
    if (!entry.is_table(level)) {
      const uint64_t offset = ipa.value() & (level_size(level) - 1);
      return Translation{entry.output() + offset, level,         entry.attributes(),
                         entry.state(),           entry.young(), entry};
    }
    table = detail::table_of(entry);
    --level;
    index = level_index(ipa.value(), level);
  }
}

}  // namespace hvmm::stage2
