// The fake physical arena of the host build (see arena.h).
#include "hvmm/guest/mm/host/arena.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>

#include "arena_state.h"

namespace hvmm::guest::mm::host {

// Map the arena with MAP_NORESERVE so a large fake RAM costs only what is touched.
PhysArena::PhysArena(size_t size) : base_(nullptr), size_((size + 4095) & ~size_t{4095}) {
  void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "PhysArena: cannot map %zu bytes\n", size_);
    std::abort();
  }
  base_ = static_cast<uint8_t*>(p);
  detail::set_current_arena(base_, size_);
}

// Unmap the arena and clear the current-arena pointer.
PhysArena::~PhysArena() {
  detail::set_current_arena(nullptr, 0);
  munmap(base_, size_);
}

}  // namespace hvmm::guest::mm::host
