// A small fake machine for guest/mm tests: an arena of RAM, memblock and a buddy allocator.
#pragma once

#include <cstdint>
#include <memory>

#include "hvmm/guest/mm/buddy.h"
#include "hvmm/guest/mm/host/arena.h"
#include "hvmm/guest/mm/memblock.h"

namespace hvmm::guest::mm::testing {

inline constexpr uint64_t kMiB = uint64_t{1} << 20;

// RAM [0, size) with the first MiB reserved (as the kernel reserves low memory).
class FakeMachine {
 public:
  explicit FakeMachine(uint64_t size = 64 * kMiB)
      : arena_(size),
        memblock_(std::make_unique<Memblock>()),
        buddy_(std::make_unique<BuddyAllocator>()) {
    host::set_this_cpu(0);
    host::set_cpu_count(4);
    memblock_->add(PhysRange{PhysAddr(0), size});
    memblock_->reserve(PhysRange{PhysAddr(0), kMiB});
    ok_ = buddy_->init(*memblock_);
  }

  bool ok() const { return ok_; }
  BuddyAllocator& buddy() { return *buddy_; }
  Memblock& memblock() { return *memblock_; }
  host::PhysArena& arena() { return arena_; }

 private:
  host::PhysArena arena_;
  std::unique_ptr<Memblock> memblock_;
  std::unique_ptr<BuddyAllocator> buddy_;
  bool ok_ = false;
};

}  // namespace hvmm::guest::mm::testing
