// Free page reporting over the balloon's reporting queue. The buddy allocator keeps the
// "reported" mark and the notification counter (guest/mm/DESIGN.md); this file decides when to
// report and moves batches of blocks through the device.
#include "hvmm/guest/page_reporting.h"

#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/time.h"

namespace hvmm::guest {
namespace {

constexpr uint64_t kRequestTimeoutUs = 10000000;

// The reporting state.
struct Reporting {
  virtio::Virtqueue* vq = nullptr;
  uint64_t delay_tsc = 0;
  uint64_t due_tsc = 0;  // when the pending notification may be served; 0: none pending
  PageReportingStats stats;
};

Reporting g_reporting;

// Send one batch as a scatter list and wait for it; false if the device did not return it.
bool report_batch(Reporting& r, const mm::IsolatedBlock* blocks, unsigned n) {
  virtio::Buffer sg[kPageReportingCapacity];
  mm::BuddyAllocator& buddy = kmem().buddy;
  for (unsigned i = 0; i < n; ++i)
    sg[i] = virtio::Buffer{buddy.page_to_phys(blocks[i].page),
                           static_cast<uint32_t>(kPageSize << blocks[i].order), true};
  if (!r.vq->add(sg, n, &r))
    return false;
  r.vq->kick();
  bool done = r.vq->wait_used(kRequestTimeoutUs);
  void* token;
  while (r.vq->collect(&token, nullptr)) {
  }
  return done;
}

// Report every unreported reportable block, a batch at a time; one console line.
void run_cycle(Reporting& r) {
  mm::BuddyAllocator& buddy = kmem().buddy;
  uint64_t t0 = arch::rdtsc();
  uint64_t pages = 0;
  uint64_t requests = 0;
  mm::IsolatedBlock blocks[kPageReportingCapacity];
  for (;;) {
    unsigned n = buddy.isolate_unreported(blocks, kPageReportingCapacity);
    if (n == 0)
      break;
    bool ok = report_batch(r, blocks, n);
    buddy.putback_isolated(blocks, n, ok);
    if (!ok) {
      printk("page-reporting: the device did not return a request; reporting stops\n");
      r.vq = nullptr;
      break;
    }
    for (unsigned i = 0; i < n; ++i)
      pages += uint64_t{1} << blocks[i].order;
    ++requests;
  }
  uint64_t us = tsc_to_us(arch::rdtsc() - t0);
  r.stats.requests += requests;
  r.stats.pages += pages;
  r.stats.us += us;
  ++r.stats.cycles;
  if (requests != 0)
    printk("page-reporting: %lu pages in %lu requests (%lu us)\n", pages, requests, us);
}

}  // namespace

// Enable reporting in the buddy allocator and schedule the first cycle.
void page_reporting_start(virtio::Virtqueue* vq, uint64_t delay_us) {
  Reporting& r = g_reporting;
  r.vq = vq;
  r.delay_tsc = delay_us * (tsc_hz() / 1000000);
  kmem().buddy.set_report_order(kPageReportingOrder);
  r.due_tsc = arch::rdtsc() + r.delay_tsc;
}

// Arm the delay on the first notification; run the cycle once it has passed.
void page_reporting_service() {
  Reporting& r = g_reporting;
  if (r.vq == nullptr)
    return;
  uint64_t now = arch::rdtsc();
  if (kmem().buddy.take_report_notifications() != 0 && r.due_tsc == 0)
    r.due_tsc = now + r.delay_tsc;
  if (r.due_tsc == 0 || now < r.due_tsc)
    return;
  r.due_tsc = 0;
  run_cycle(r);
}

// Copy the counters.
PageReportingStats page_reporting_stats() {
  return g_reporting.stats;
}

}  // namespace hvmm::guest
