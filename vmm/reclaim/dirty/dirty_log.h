// DirtyLog: the DirtySource over KVM's per-memslot dirty bitmaps, with manual protect.
//
// Every slot carries KVM_MEM_LOG_DIRTY_PAGES and the VM has KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
// (KvmVm::enable_manual_dirty_log_protect, before the slots exist). A harvest, per slot:
// KVM_GET_DIRTY_LOG copies the bitmap (KVM clears and protects nothing), the set bits become
// IPA runs, and KVM_CLEAR_DIRTY_LOG clears those bits and write-protects those pages again
// (clear_ranges(): one request from the first dirty word to the last). A page written between
// the two calls was reported already, so nothing is lost; its next write is tracked again.
// With KVM_DIRTY_LOG_INITIALLY_SET the first harvest reports every page of every slot (all
// bits start set, no page is protected until its first clear): a superset of the pages
// written since tracking began. The cost of a harvest grows with the size of guest RAM (the
// bitmaps), not with the pages written.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "hvmm/vmm/kvm/kvm.h"
#include "hvmm/vmm/memory/memslots.h"
#include "hvmm/vmm/reclaim/dirty/dirty_bitmap.h"
#include "hvmm/vmm/reclaim/dirty/dirty_source.h"

namespace hvmm::vmm {

// DirtyLogIoctls: the two KVM calls DirtyLog makes (KvmVm's in production, a fake in tests).
class DirtyLogIoctls {
 public:
  virtual ~DirtyLogIoctls() = default;
  // KVM_GET_DIRTY_LOG of `slot` into `bitmap` (sized for the slot).
  virtual Result<void> get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap) = 0;
  // KVM_CLEAR_DIRTY_LOG of `range` of `slot`; bit 0 of `bitmap` is range.first_page.
  virtual Result<void> clear_dirty_log(uint32_t slot, ClearRange range,
                                       std::span<const uint64_t> bitmap) = 0;
};

// The ioctls of `vm` (which must outlive the result).
std::unique_ptr<DirtyLogIoctls> kvm_dirty_log_ioctls(KvmVm& vm);

class DirtyLog final : public DirtySource {
 public:
  // Harvest the slots of `slots` through `ioctls`; `slots` must outlive the DirtyLog.
  DirtyLog(std::unique_ptr<DirtyLogIoctls> ioctls, const MemslotTable& slots)
      : ioctls_(std::move(ioctls)), slots_(slots) {}

  // Get, convert and clear every logging slot, then report the runs (outside the table's
  // lock: `written` may take any lock). A failed ioctl stops the harvest with an error naming
  // the slot; the runs gathered before it are still reported.
  Result<void> harvest(const std::function<void(IpaRange run)>& written) override;
  DirtyTracking kind() const override { return DirtyTracking::kLog; }
  DirtySourceStats stats() const override;

 private:
  // Get, gather and clear one slot's bitmap.
  Result<void> harvest_slot(const Memslot& slot, std::vector<IpaRange>& runs, uint64_t& pages);

  std::unique_ptr<DirtyLogIoctls> ioctls_;
  const MemslotTable& slots_;
  std::vector<uint64_t> bitmap_;  // reused by every harvest (one harvest at a time)
  mutable std::mutex stats_lock_;
  DirtySourceStats stats_;
};

}  // namespace hvmm::vmm
