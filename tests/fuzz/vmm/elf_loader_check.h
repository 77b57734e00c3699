// The body of the ELF loader's fuzz target: one input through the loader's public API with
// every property the loader promises checked against an independent reading of the image.
//
// The input is parsed with parse_pvh_kernel. An accepted kernel must agree with elf_image.h's
// reading (segments inside the file, file size within memory size, no wrap-around, the PVH
// entry from the first Xen note with a 4- or 8-byte descriptor whose high half is zero, inside
// a segment's file bytes). It is then placed with check_kernel_placement in a 128 MiB and a
// 5 GiB RAM layout (the second has RAM above the MMIO hole): placement may only succeed when
// every segment lies inside one RAM region, clear of the boot data and of every other segment,
// and what fits the smaller layout fits the larger. A placed kernel is loaded into a bounded
// fake guest memory that accepts only writes inside RAM and checks that the loader writes
// exactly each segment's file bytes, in order, at its physical address.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace hvmm::vmm::fuzz {

// Run one input; return "" when every property held, else what went wrong.
std::string check_elf_input(std::span<const uint8_t> image);

}  // namespace hvmm::vmm::fuzz
