// Dirty bitmaps: runs of set bits as IPA ranges, and the clears that re-arm them.
#include "hvmm/vmm/reclaim/dirty/dirty_bitmap.h"

#include <algorithm>
#include <bit>

namespace hvmm::vmm {
namespace {

// Word `w` of the bitmap with the bits past page `pages` masked off.
uint64_t word_within(std::span<const uint64_t> bitmap, uint64_t w, uint64_t pages) {
  uint64_t word = bitmap[w];
  const uint64_t first = w * 64;
  if (pages - first < 64) {
    word &= (uint64_t{1} << (pages - first)) - 1;
  }
  return word;
}

// The next page at or after `page`, before `end`, whose bit equals `set`; `end` when none.
uint64_t next_page(std::span<const uint64_t> bitmap, uint64_t page, uint64_t end, bool set) {
  while (page < end) {
    const uint64_t w = page / 64;
    uint64_t word = word_within(bitmap, w, end);
    if (!set) {
      word = ~word;
    }
    word &= ~uint64_t{0} << (page % 64);
    if (word != 0) {
      return std::min(end, w * 64 + static_cast<uint64_t>(std::countr_zero(word)));
    }
    page = (w + 1) * 64;
  }
  return end;
}

}  // namespace

// Scan set bits a word at a time: clear words are skipped whole.
uint64_t for_each_dirty_run(const Memslot& slot, std::span<const uint64_t> bitmap,
                            const std::function<void(IpaRange)>& run) {
  const uint64_t pages = std::min(slot.pages(), bitmap.size() * 64);
  uint64_t reported = 0;
  for (uint64_t page = next_page(bitmap, 0, pages, true); page < pages;) {
    const uint64_t end = next_page(bitmap, page, pages, false);
    run(IpaRange{slot.range.start + page * kPageSize, (end - page) * kPageSize});
    reported += end - page;
    page = next_page(bitmap, end, pages, true);
  }
  return reported;
}

// KVM's checks, in its order.
Result<void> check_clear_range(ClearRange range, uint64_t slot_pages) {
  if (range.first_page % 64 != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "clear of pages [{}, +{}): first_page is not a multiple of 64",
                      range.first_page, range.num_pages);
  }
  if (range.first_page > slot_pages || range.num_pages > slot_pages - range.first_page) {
    return make_error(ErrorCode::kOutOfRange,
                      "clear of pages [{}, +{}) leaves the slot of {} pages", range.first_page,
                      range.num_pages, slot_pages);
  }
  const bool to_slot_end = range.first_page + range.num_pages == slot_pages;
  if (range.num_pages % 64 != 0 && !to_slot_end) {
    return make_error(ErrorCode::kInvalidArgument,
                      "clear of pages [{}, +{}): num_pages is not a multiple of 64 and the range "
                      "does not end at the slot's end ({} pages)",
                      range.first_page, range.num_pages, slot_pages);
  }
  return Ok();
}

// From the first dirty word to the last, in aligned pieces.
std::vector<ClearRange> clear_ranges(std::span<const uint64_t> bitmap, uint64_t slot_pages,
                                     uint32_t max_pages) {
  std::vector<ClearRange> ranges;
  const uint64_t pages = std::min(slot_pages, bitmap.size() * 64);
  const uint64_t words = dirty_bitmap_words(pages);
  uint64_t first = 0;
  while (first < words && word_within(bitmap, first, pages) == 0) {
    ++first;
  }
  if (first == words) {
    return ranges;
  }
  uint64_t last = words - 1;
  while (word_within(bitmap, last, pages) == 0) {
    --last;
  }
  const uint64_t step = std::max<uint64_t>(64, max_pages - max_pages % 64);
  const uint64_t end = std::min(pages, (last + 1) * 64);
  for (uint64_t page = first * 64; page < end; page += step) {
    ranges.push_back(ClearRange{page, static_cast<uint32_t>(std::min(step, end - page))});
  }
  return ranges;
}

}  // namespace hvmm::vmm
