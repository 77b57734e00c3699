// The guest kernel keeps its allocators in globals and runs no constructors before them:
// every guest/mm object must be constant-initialisable (checked at compile time here).
#include <gtest/gtest.h>

#include "hvmm/guest/mm/address_space.h"
#include "hvmm/guest/mm/asid.h"
#include "hvmm/guest/mm/buddy.h"
#include "hvmm/guest/mm/memblock.h"
#include "hvmm/guest/mm/page_table.h"
#include "hvmm/guest/mm/slab.h"
#include "hvmm/guest/mm/vmalloc.h"

namespace hvmm::guest::mm {
namespace {

constinit Memblock g_memblock;
constinit BuddyAllocator g_buddy;
constinit KmemCache g_cache;
constinit Kmalloc g_kmalloc;
constinit PageTable g_table;
constinit Vmalloc g_vmalloc;
constinit AddressSpace g_space;
constinit AsidAllocator g_asids;

// The globals above compiled as constinit; they start zeroed and unlocked.
TEST(ConstInit, GlobalsAreConstantInitialised) {
  EXPECT_EQ(g_memblock.memory().count(), 0u);
  EXPECT_EQ(g_buddy.end_pfn(), 0u);
  EXPECT_EQ(g_cache.object_size(), 0u);
  EXPECT_EQ(g_kmalloc.cache_for(8)->object_size(), 0u);
  EXPECT_EQ(g_table.root().value(), 0u);
  EXPECT_EQ(g_vmalloc.stats().allocs, 0u);
  EXPECT_EQ(g_space.brk_current().value(), 0u);
  EXPECT_EQ(g_asids.generation(), 0u);
}

}  // namespace
}  // namespace hvmm::guest::mm
