// The virtio-balloon driver (virtio spec 5.5): follows the device's target (config num_pages)
// by inflating (pages taken from the buddy allocator, order-9 blocks first, 256 PFNs per
// buffer) and deflating, answers statistics requests, reports free order >= 9 blocks (free
// page reporting) and gives pages back when an allocation would fail (deflate-on-oom).
//
// The interrupt handler only records what happened; the work runs in balloon_service(),
// called from process context on CPU 0 (the idle loop), except deflate-on-oom, which runs in
// the failing allocation's context.
#pragma once

#include <cstdint>

namespace hvmm::guest {

// Counters of the driver (monotonic, except the gauges marked).
struct BalloonStats {
  uint64_t pages = 0;          // gauge: 4 KiB pages held by the balloon (actual)
  uint64_t target = 0;         // gauge: the device's last target
  uint64_t inflated = 0;       // pages given to the host
  uint64_t deflated = 0;       // pages taken back (including on OOM)
  uint64_t oom_deflated = 0;   // pages taken back by deflate-on-oom
  uint64_t oom_events = 0;     // deflate-on-oom calls that gave pages back
  uint64_t buffers = 0;        // inflate and deflate buffers sent
  uint64_t stats_updates = 0;  // statistics buffers sent
  uint64_t reports = 0;        // free page reporting requests sent
  uint64_t reported_pages = 0;
  uint64_t inflate_us = 0;  // time spent inflating and deflating (driver side, with the host)
  uint64_t report_us = 0;   // time spent reporting
};

// Find an unclaimed virtio-balloon, negotiate STATS_VQ, DEFLATE_ON_OOM and REPORTING (those
// offered), set up its queues and hooks, and follow the current target once. False without a
// device (silently) or when setup fails (said on the console). After virtio_init().
bool balloon_init();

// True once balloon_init() succeeded.
bool balloon_present();

// Handle what the device asked for since the last call: a new target, a statistics request,
// and free page reporting when due (order >= 9 blocks freed, then `page_reporting.delay_ms`,
// default 2000). Process context, no lock held; cheap when nothing is pending.
void balloon_service();

// A snapshot of the counters.
BalloonStats balloon_stats();

// Print the counters (one line, loglevel=7).
void balloon_print_stats();

}  // namespace hvmm::guest
