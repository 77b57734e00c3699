// Free page reporting (as Linux's mm/page_reporting.c): free buddy blocks of order >= 9 are
// isolated in batches of up to 32, sent to the device as one scatter list of device-writable
// ranges, and put back marked reported once it returns them, so each is reported once until
// it is allocated again. A cycle runs when reportable blocks were freed and the delay has
// passed since that was first noticed, so a busy allocator does not report all the time.
#pragma once

#include <cstdint>

#include "hvmm/guest/virtio.h"

namespace hvmm::guest {

// Blocks of this order and above are reported (2 MiB: a host huge page).
inline constexpr unsigned kPageReportingOrder = 9;
// Ranges per request.
inline constexpr unsigned kPageReportingCapacity = 32;

// Counters of free page reporting.
struct PageReportingStats {
  uint64_t requests = 0;  // scatter lists sent
  uint64_t pages = 0;     // 4 KiB pages reported
  uint64_t cycles = 0;    // reporting cycles run
  uint64_t us = 0;        // time spent in cycles
};

// Report through `vq` from now on, `delay_us` after reportable frees are first seen; what is
// free now is reported at the first service after the delay.
void page_reporting_start(virtio::Virtqueue* vq, uint64_t delay_us);

// Run a cycle if one is due (process context, no lock held); prints one line per cycle.
void page_reporting_service();

// A snapshot of the counters.
PageReportingStats page_reporting_stats();

}  // namespace hvmm::guest
