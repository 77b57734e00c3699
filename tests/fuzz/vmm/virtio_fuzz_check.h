// Bodies of the virtio fuzz targets: arbitrary guest memory and register traffic through the
// virtqueue parser and the balloon device, with every safety property checked.
//
// check_virtqueue_input: the input's first 12 bytes program one queue (size, ring offsets,
// whether INDIRECT is allowed, how many pops), the rest is guest RAM (64 KiB, guarded).
// Every popped chain must have at most `size` descriptors, none wrapping; after the first
// error the queue is left alone; nothing outside RAM may change.
//
// check_balloon_input: the input is a stream of operations on a balloon behind a virtio-mmio
// transport (register reads and writes, guest memory writes, queue notifications, stats
// requests, target changes, a well-behaved bring-up). The backend must only ever be given
// sorted, disjoint, page-aligned runs inside the balloon's RAM; a device in NEEDS_RESET must
// release nothing more; nothing outside RAM may change.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace hvmm::vmm::fuzz {

// Run one input; "" when every property held, else what went wrong.
std::string check_virtqueue_input(std::span<const uint8_t> input);
std::string check_balloon_input(std::span<const uint8_t> input);

}  // namespace hvmm::vmm::fuzz
