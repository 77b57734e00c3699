// Tests of the pool's size classes (vmm/reclaim/pool/size_classes.h).
#include "hvmm/vmm/reclaim/pool/size_classes.h"

#include <gtest/gtest.h>

#include "hvmm/base/address.h"

namespace hvmm::vmm {
namespace {

// The classes climb from the smallest slot to exactly the largest entry, each step under
// 1/16 of the class it leads to, so an entry wastes less than 1/16 of its slot.
TEST(PoolSizeClasses, StepsKeepTheWastePerEntrySmall) {
  for (uint32_t max_entry : {3072u, 4096u, 1000u, 64u}) {
    const SizeClassTable classes(max_entry);
    ASSERT_GT(classes.size(), 0u);
    EXPECT_EQ(classes[0].slot_size, kMinSlotSize);
    EXPECT_EQ(classes.max_entry(), max_entry);
    for (size_t i = 1; i < classes.size(); ++i) {
      const uint32_t step = classes[i].slot_size - classes[i - 1].slot_size;
      EXPECT_GT(step, 0u) << max_entry << " class " << i;
      EXPECT_LE(step * 16, std::max<uint32_t>(256, classes[i].slot_size))
          << max_entry << " class " << i;
    }
  }
}

// class_for picks the smallest class that holds the size, for every size up to the maximum.
TEST(PoolSizeClasses, ClassForIsTheSmallestThatFits) {
  const SizeClassTable classes(3072);
  for (uint32_t bytes = 1; bytes <= 3072; ++bytes) {
    const uint16_t c = classes.class_for(bytes);
    ASSERT_LT(c, classes.size());
    EXPECT_GE(classes[c].slot_size, bytes);
    if (c > 0) {
      EXPECT_LT(classes[c - 1].slot_size, bytes);
    }
  }
}

// Each class's span (1 to 4 pages) has the smallest tail share of the choices, and at most
// one slot fits in the tail.
TEST(PoolSizeClasses, SpanSizeMinimisesTheTail) {
  const SizeClassTable classes(3072);
  for (size_t i = 0; i < classes.size(); ++i) {
    const SizeClass& c = classes[i];
    ASSERT_GE(c.span_pages, 1u);
    ASSERT_LE(c.span_pages, kMaxSpanPages);
    EXPECT_EQ(c.slots_per_span, c.span_bytes() / c.slot_size);
    EXPECT_LT(c.tail_bytes(), c.slot_size);
    const double share = static_cast<double>(c.tail_bytes()) / static_cast<double>(c.span_bytes());
    for (uint32_t pages = 1; pages <= kMaxSpanPages; ++pages) {
      const uint64_t span = pages * kPageSize;
      if (span < c.slot_size) {
        continue;
      }
      EXPECT_LE(share, static_cast<double>(span % c.slot_size) / static_cast<double>(span) + 1e-12)
          << "class " << c.slot_size << " with " << pages << " pages";
    }
  }
  // 3072-byte slots: 3 pages hold 4 exactly.
  EXPECT_EQ(classes[classes.class_for(3072)].span_pages, 3u);
  EXPECT_EQ(classes[classes.class_for(3072)].tail_bytes(), 0u);
}

}  // namespace
}  // namespace hvmm::vmm
