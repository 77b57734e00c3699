// Figures for people: sizes in binary units and durations in the largest unit that keeps
// three significant digits ("1.50 GiB", "128 MiB", "812 B"; "1.23 ms", "45.0 us", "2.00 s").
#pragma once

#include <cstdint>
#include <string>

namespace hvmm::args {

// `bytes` in B, KiB, MiB, GiB, TiB or PiB.
std::string human_size(uint64_t bytes);

// `nanoseconds` in ns, us, ms or s.
std::string human_duration_ns(uint64_t nanoseconds);

}  // namespace hvmm::args
