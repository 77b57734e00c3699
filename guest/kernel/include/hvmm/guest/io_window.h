// The I/O window: one page of the kernel's ioremap area that is pointed at one physical
// page after another, uncached (PCD|PWT, NX, not global), so the host can have the kernel
// access any guest-physical address (the control channel's kProbe) without using up the
// ioremap area, whose windows are never freed. Each access remaps the page (unmap, INVLPG on
// this CPU, map): no other CPU ever uses the address, so a stale entry elsewhere is never
// used. A few hundred ring-0 instructions per access.
#pragma once

#include <cstdint>

#include "hvmm/base/address.h"

namespace hvmm::guest {

// The bits of a physical address this CPU can map (CPUID 0x80000008 EAX[7:0], 36 without it).
unsigned physical_address_bits();

// Read (or, with `write`, write `*value` to) the 4 bytes at `pa`, which must be 4-byte
// aligned and below 2^physical_address_bits(), through the window; a read stores what it
// read in `*value`. False when the window cannot be mapped (no ioremap space or no memory
// for a page table). One access at a time on the whole machine (a lock serializes them).
bool io_window_access(PhysAddr pa, bool write, uint32_t* value);

}  // namespace hvmm::guest
