// DirtyLog: harvests of the per-memslot dirty bitmaps.
#include "hvmm/vmm/reclaim/dirty/dirty_log.h"

#include <linux/kvm.h>

#include <chrono>

#include "hvmm/base/format.h"

namespace hvmm::vmm {
namespace {

// KvmVm's dirty-log ioctls behind the DirtyLogIoctls interface.
class KvmDirtyLogIoctls final : public DirtyLogIoctls {
 public:
  explicit KvmDirtyLogIoctls(KvmVm& vm) : vm_(vm) {}
  Result<void> get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap) override {
    return vm_.get_dirty_log(slot, bitmap);
  }
  Result<void> clear_dirty_log(uint32_t slot, ClearRange range,
                               std::span<const uint64_t> bitmap) override {
    return vm_.clear_dirty_log(slot, range.first_page, range.num_pages, bitmap);
  }

 private:
  KvmVm& vm_;
};

}  // namespace

// Wrap the VM.
std::unique_ptr<DirtyLogIoctls> kvm_dirty_log_ioctls(KvmVm& vm) {
  return std::make_unique<KvmDirtyLogIoctls>(vm);
}

// The clears name only what this bitmap reported (KVM clears the bits set in the request), and
// are checked against KVM's rules first so a bug here is an error naming the rule.
Result<void> DirtyLog::harvest_slot(const Memslot& slot, std::vector<IpaRange>& runs,
                                    uint64_t& pages) {
  bitmap_.assign(dirty_bitmap_words(slot.pages()), 0);
  HVMM_TRY(ioctls_->get_dirty_log(slot.slot, bitmap_));
  pages += for_each_dirty_run(slot, bitmap_, [&](IpaRange run) { runs.push_back(run); });
  for (const ClearRange& range : clear_ranges(bitmap_, slot.pages())) {
    HVMM_TRY(check_clear_range(range, slot.pages()));
    HVMM_TRY(ioctls_->clear_dirty_log(
        slot.slot, range, std::span<const uint64_t>(bitmap_).subspan(range.first_page / 64)));
  }
  return Ok();
}

// Slots without KVM_MEM_LOG_DIRTY_PAGES have no bitmap (KVM answers ENOENT): skipped.
Result<void> DirtyLog::harvest(const std::function<void(IpaRange run)>& written) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<IpaRange> runs;
  uint64_t pages = 0;
  Result<void> result = Ok();
  slots_.visit([&](std::span<const Memslot> slots) {
    for (const Memslot& slot : slots) {
      if ((slot.flags & KVM_MEM_LOG_DIRTY_PAGES) == 0) {
        continue;
      }
      if (Result<void> harvested = harvest_slot(slot, runs, pages); !harvested.ok()) {
        result = make_error(harvested.error().code, "dirty log of memslot {} ({}): {}", slot.slot,
                            slot.range, harvested.error().message);
        return;
      }
    }
  });
  for (const IpaRange& run : runs) {
    written(run);
  }
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  std::lock_guard guard(stats_lock_);
  ++stats_.harvests;
  stats_.dirty_pages += pages;
  stats_.harvest_ns_total += static_cast<uint64_t>(ns);
  return result;
}

// A copy under the lock.
DirtySourceStats DirtyLog::stats() const {
  std::lock_guard guard(stats_lock_);
  return stats_;
}

}  // namespace hvmm::vmm
