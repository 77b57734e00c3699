// Threads acting as CPUs hammer the buddy allocator and kmalloc, freeing each other's
// objects; afterwards every frame must be back (run under TSan in CI).
#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "hvmm/guest/mm/slab.h"
#include "mm_fixture.h"

namespace hvmm::guest::mm {
namespace {

using testing::FakeMachine;

// A mutex-protected hand-over queue of kmalloc'ed objects between "CPUs".
class Handover {
 public:
  void put(void* object) {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(object);
  }
  void* take() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.empty()) {
      return nullptr;
    }
    void* object = queue_.front();
    queue_.pop_front();
    return object;
  }

 private:
  std::mutex mutex_;
  std::deque<void*> queue_;
};

// Four CPUs allocate kmalloc objects and buddy blocks, free half locally and hand half to
// others; all memory returns to the buddy allocator at the end.
TEST(AllocatorsConcurrency, CrossCpuFreesReturnEverything) {
  constexpr unsigned kThreads = 4;
  FakeMachine machine(64 * testing::kMiB);
  BuddyAllocator& buddy = machine.buddy();
  auto km = std::make_unique<Kmalloc>();
  ASSERT_TRUE(km->init(&buddy, false));
  buddy.drain_all();
  const uint64_t baseline = buddy.free_pages_total();
  Handover handover;
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      host::set_this_cpu(t);
      std::mt19937_64 rng(t);
      std::vector<std::pair<Page*, unsigned>> blocks;
      for (int step = 0; step < 20000; ++step) {
        const size_t size = 8 + rng() % 2000;
        auto* object = static_cast<uint8_t*>(km->alloc(size, kGfpKernel));
        ASSERT_NE(object, nullptr);
        std::memset(object, static_cast<int>(t), size < 64 ? size : 64);
        if (rng() % 2 == 0) {
          handover.put(object);
        } else {
          km->free(object);
        }
        if (void* other = handover.take()) {
          km->free(other);
        }
        if (rng() % 8 == 0) {
          const auto order = static_cast<unsigned>(rng() % 3);
          if (Page* page = buddy.alloc_pages(kGfpKernel, order)) {
            blocks.emplace_back(page, order);
          }
        }
        if (!blocks.empty() && rng() % 8 == 0) {
          buddy.free_pages(blocks.back().first, blocks.back().second);
          blocks.pop_back();
        }
      }
      for (auto [page, order] : blocks) {
        buddy.free_pages(page, order);
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  while (void* object = handover.take()) {
    km->free(object);
  }
  for (unsigned cpu = 0; cpu < kThreads; ++cpu) {
    host::set_this_cpu(cpu);
    for (unsigned i = 0; i < kKmallocClasses; ++i) {
      km->cache(i).shrink();
    }
  }
  host::set_this_cpu(0);
  buddy.drain_all();
  EXPECT_EQ(buddy.free_pages_total(), baseline);
}

}  // namespace
}  // namespace hvmm::guest::mm
