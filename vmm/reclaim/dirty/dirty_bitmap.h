// KVM's per-memslot dirty bitmap: one bit per page of the slot, page i in bit i % 64 of word
// i / 64. Turning a harvested bitmap into IPA runs, and into the KVM_CLEAR_DIRTY_LOG requests
// that re-arm tracking for exactly the pages it reported (KVM's 64-page rules included).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/memory/memslots.h"

namespace hvmm::vmm {

// The words of a bitmap for `pages` pages.
constexpr uint64_t dirty_bitmap_words(uint64_t pages) {
  return (pages + 63) / 64;
}

// Call `run` for every maximal run of set bits among the slot's pages, placed in IPA by the
// slot (page i is slot.range.start + i * kPageSize), in IPA order; bits past the slot's last
// page are ignored. Returns the pages reported.
uint64_t for_each_dirty_run(const Memslot& slot, std::span<const uint64_t> bitmap,
                            const std::function<void(IpaRange)>& run);

// One KVM_CLEAR_DIRTY_LOG request: pages [first_page, first_page + num_pages) of a slot.
struct ClearRange {
  uint64_t first_page = 0;
  uint32_t num_pages = 0;
  bool operator==(const ClearRange&) const = default;
};

// The largest clear KVM takes in one request that keeps the 64-page rule (num_pages is 32
// bits wide): 2^31 pages, 8 TiB.
inline constexpr uint32_t kMaxClearPages = uint32_t{1} << 31;

// Whether KVM accepts `range` on a slot of `slot_pages` pages (kvm_clear_dirty_log_protect):
// first_page a multiple of 64, the range inside the slot, and num_pages a multiple of 64
// unless the range ends at the slot's end. The error names the rule broken.
Result<void> check_clear_range(ClearRange range, uint64_t slot_pages);

// The clears that re-arm every page set in `bitmap` (a slot of `slot_pages` pages): from the
// first to the last word with a bit set (so both ends fall on 64 pages, the end cut at the
// slot's end), in pieces of at most `max_pages` (a multiple of 64). Words in between that are
// clear cost KVM nothing: it only re-protects the bits set. Empty when no bit is set.
std::vector<ClearRange> clear_ranges(std::span<const uint64_t> bitmap, uint64_t slot_pages,
                                     uint32_t max_pages = kMaxClearPages);

}  // namespace hvmm::vmm
