// Internal: the current arena shared by arena.cc and arch_hooks_host.cc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hvmm::guest::mm::host::detail {

// Record the arena that phys_to_virt/virt_to_phys translate through.
void set_current_arena(uint8_t* base, size_t size);

}  // namespace hvmm::guest::mm::host::detail
