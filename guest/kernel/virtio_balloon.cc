// virtio-balloon driver (virtio spec 5.5). Queues are numbered compactly: inflate 0, deflate
// 1, then stats (STATS_VQ) and reporting (REPORTING), each only when negotiated; no free page
// hinting is asked for. Inflated memory is a list of buddy blocks (head Page marked
// kPageBalloon, its order in Page::order, linked through Page::next/prev), so the driver needs
// no memory of its own besides one page for the PFN and statistics buffers.
//
// Ring-0 code is slow where this runs, so the work is in large pieces: inflation allocates
// order-9 blocks (4 KiB pages × 512) first and falls back to smaller orders only when the
// allocator has none, and each buffer carries 256 PFNs. The driver waits for every buffer.
#include "hvmm/guest/virtio_balloon.h"

#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/cmdline.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/control_service.h"
#include "hvmm/guest/fault.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/page_reporting.h"
#include "hvmm/guest/time.h"
#include "hvmm/guest/virtio.h"

namespace hvmm::guest {
namespace {

constexpr uint64_t kFeatureStatsVq = uint64_t{1} << 1;
constexpr uint64_t kFeatureDeflateOnOom = uint64_t{1} << 2;
constexpr uint64_t kFeatureReporting = uint64_t{1} << 5;

constexpr uint32_t kConfigNumPages = 0;
constexpr uint32_t kConfigActual = 4;

constexpr unsigned kPfnsPerBuffer = 256;
constexpr unsigned kInflateOrder = 9;
constexpr unsigned kDeflateMaxOrder = 8;         // a deflated chunk fits one buffer
constexpr uint64_t kOomPages = 256;              // given back per OOM call, as Linux does
constexpr uint64_t kBufferTimeoutUs = 10000000;  // a device holding a buffer this long is broken

// Statistics tags (virtio spec 5.5.6.3).
enum StatTag : uint16_t {
  kStatSwapIn = 0,
  kStatSwapOut = 1,
  kStatMajorFaults = 2,
  kStatMinorFaults = 3,
  kStatFree = 4,
  kStatTotal = 5,
  kStatAvailable = 6,
};

// One statistics record as the device reads it.
struct __attribute__((packed)) StatRecord {
  uint16_t tag;
  uint64_t value;
};
constexpr unsigned kStatCount = 7;

// The driver's state: one balloon.
struct Balloon {
  virtio::Device* device = nullptr;
  virtio::Virtqueue* inflate_vq = nullptr;
  virtio::Virtqueue* deflate_vq = nullptr;
  virtio::Virtqueue* stats_vq = nullptr;
  mm::PageList blocks;                   // held blocks, most recent first
  uint32_t* pfns = nullptr;              // kPfnsPerBuffer entries, in `buffer_page`
  StatRecord* stats = nullptr;           // kStatCount records, in `buffer_page` after the PFNs
  PhysAddr buffer_phys;                  // physical address of the buffer page
  uint32_t busy = 0;                     // 1 while a CPU inflates or deflates (OOM path: try only)
  volatile uint32_t config_changed = 0;  // set by the interrupt handler
  BalloonStats counters;
};

Balloon g_balloon;

// The interrupt handler: note a configuration change; used buffers wake the waiters.
void on_interrupt(virtio::Device&, uint32_t status, void* context) {
  auto* b = static_cast<Balloon*>(context);
  if ((status & virtio::kInterruptConfigChange) != 0)
    __atomic_store_n(&b->config_changed, 1u, __ATOMIC_RELEASE);
}

// Take the inflate/deflate lock, or fail at once when `try_only`.
bool lock_balloon(Balloon& b, bool try_only) {
  while (__atomic_exchange_n(&b.busy, 1u, __ATOMIC_ACQUIRE) != 0) {
    if (try_only)
      return false;
    arch::pause();
  }
  return true;
}

// Release the inflate/deflate lock.
void unlock_balloon(Balloon& b) {
  __atomic_store_n(&b.busy, 0u, __ATOMIC_RELEASE);
}

// Send the first `count` PFNs of the buffer on `vq` and wait for the device to return it.
bool send_pfns(Balloon& b, virtio::Virtqueue* vq, unsigned count, virtio::Virtqueue::Wait how) {
  virtio::Buffer buffer{b.buffer_phys, static_cast<uint32_t>(count * sizeof(uint32_t)), false};
  if (!vq->add(&buffer, 1, &b))
    return false;
  vq->kick();
  ++b.counters.buffers;
  bool done = vq->wait_used(kBufferTimeoutUs, how);
  void* token;
  while (vq->collect(&token, nullptr)) {
  }
  if (!done)
    printk("virtio-balloon: the device did not return a buffer of %u PFNs\n", count);
  return done;
}

// Allocate the largest block up to min(kInflateOrder, what is still wanted) that the buddy
// allocator has without going below its watermark; nullptr when it has none.
mm::Page* take_block(uint64_t wanted, unsigned* order) {
  unsigned o = kInflateOrder;
  while (o > 0 && (uint64_t{1} << o) > wanted)
    --o;
  for (;;) {
    mm::Page* page = kmem().buddy.alloc_pages(mm::kGfpKernel | mm::kGfpNoOom, o);
    if (page != nullptr || o == 0) {
      *order = o;
      return page;
    }
    --o;
  }
}

// Inflate until the balloon holds `target` pages or memory runs out. Blocks join the list at
// once; their PFNs go out 256 per buffer.
void inflate_to(Balloon& b, uint64_t target) {
  mm::BuddyAllocator& buddy = kmem().buddy;
  unsigned n = 0;
  while (b.counters.pages < target) {
    unsigned order;
    mm::Page* block = take_block(target - b.counters.pages, &order);
    if (block == nullptr)
      break;
    mm::set_page_flags(block, mm::kPageBalloon);
    block->order = static_cast<uint8_t>(order);
    b.blocks.push(block);
    uint64_t pfn = buddy.page_to_pfn(block);
    for (uint64_t i = 0; i < (uint64_t{1} << order); ++i) {
      b.pfns[n++] = static_cast<uint32_t>(pfn + i);
      if (n == kPfnsPerBuffer) {
        if (!send_pfns(b, b.inflate_vq, n, virtio::Virtqueue::Wait::kHalt))
          return;
        n = 0;
      }
    }
    b.counters.pages += uint64_t{1} << order;
    b.counters.inflated += uint64_t{1} << order;
  }
  if (n != 0)
    send_pfns(b, b.inflate_vq, n, virtio::Virtqueue::Wait::kHalt);
}

// Take the first held block, halving it (the upper half stays held) until it is at most
// kDeflateMaxOrder and at most `wanted` pages.
mm::Page* detach_chunk(Balloon& b, uint64_t wanted, unsigned* order) {
  mm::Page* block = b.blocks.head.next;
  unsigned o = block->order;
  while (o > 0 && (o > kDeflateMaxOrder || (uint64_t{1} << o) > wanted)) {
    --o;
    mm::Page* upper = block + (uint64_t{1} << o);
    mm::set_page_flags(upper, mm::kPageBalloon);
    upper->order = static_cast<uint8_t>(o);
    b.blocks.push(upper);
    block->order = static_cast<uint8_t>(o);
  }
  b.blocks.remove(block);
  *order = o;
  return block;
}

// Deflate up to `count` pages: tell the host a buffer of chunks at a time (always, so the
// host knows before the pages are reused), then free those chunks to the buddy allocator.
uint64_t deflate_pages(Balloon& b, uint64_t count, virtio::Virtqueue::Wait how) {
  mm::BuddyAllocator& buddy = kmem().buddy;
  uint64_t done = 0;
  while (done < count && !b.blocks.empty()) {
    mm::PageList sending;
    sending.init();
    unsigned n = 0;
    while (done < count && n < kPfnsPerBuffer && !b.blocks.empty()) {
      uint64_t room = count - done < kPfnsPerBuffer - n ? count - done : kPfnsPerBuffer - n;
      unsigned order;
      mm::Page* chunk = detach_chunk(b, room, &order);
      uint64_t pfn = buddy.page_to_pfn(chunk);
      for (uint64_t i = 0; i < (uint64_t{1} << order); ++i)
        b.pfns[n++] = static_cast<uint32_t>(pfn + i);
      chunk->order = static_cast<uint8_t>(order);
      sending.push(chunk);
      done += uint64_t{1} << order;
    }
    bool told = send_pfns(b, b.deflate_vq, n, how);
    while (mm::Page* chunk = sending.pop()) {
      unsigned order = chunk->order;
      mm::set_page_flags(chunk, 0);
      chunk->order = 0;
      buddy.free_pages(chunk, order);
      b.counters.pages -= uint64_t{1} << order;
      b.counters.deflated += uint64_t{1} << order;
    }
    if (!told)
      break;
  }
  return done;
}

// Write `actual` back to the device.
void publish_actual(Balloon& b) {
  b.device->config_write32(kConfigActual, static_cast<uint32_t>(b.counters.pages));
}

// Follow the device's target; one console line when it changed.
void follow_target(Balloon& b) {
  uint32_t target = b.device->config_read32(kConfigNumPages);
  if (target == b.counters.target && target == b.counters.pages)
    return;
  lock_balloon(b, false);
  uint64_t t0 = arch::rdtsc();
  b.counters.target = target;
  if (target > b.counters.pages)
    inflate_to(b, target);
  else if (target < b.counters.pages)
    deflate_pages(b, b.counters.pages - target, virtio::Virtqueue::Wait::kHalt);
  publish_actual(b);
  uint64_t us = tsc_to_us(arch::rdtsc() - t0);
  b.counters.inflate_us += us;
  uint64_t pages = b.counters.pages;
  unlock_balloon(b);
  printk("virtio-balloon: target %u pages, actual %lu (%lu us)%s\n", target, pages, us,
         pages < target ? ", short of memory" : "");
}

// Fill the statistics records with what the kernel knows (bytes for memory sizes).
void fill_stats(Balloon& b) {
  mm::BuddyAllocator& buddy = kmem().buddy;
  uint64_t free = buddy.free_pages_total() * kPageSize;
  uint64_t reserve = 0;
  uint64_t managed = 0;
  for (unsigned z = 0; z < mm::kNrZones; ++z) {
    mm::ZoneStats s = buddy.zone_stats(static_cast<mm::ZoneId>(z));
    reserve += s.watermark_min * kPageSize;
    managed += s.managed_pages * kPageSize;
  }
  const StatRecord records[kStatCount] = {
      {kStatSwapIn, 0},
      {kStatSwapOut, 0},
      {kStatMajorFaults, 0},  // no file or swap backing: every fault is minor
      {kStatMinorFaults, user_minor_faults()},
      {kStatFree, free},
      {kStatTotal, managed},
      {kStatAvailable, free > reserve ? free - reserve : 0},
  };
  for (unsigned i = 0; i < kStatCount; ++i)
    b.stats[i] = records[i];
}

// Queue the statistics buffer (the device returns it when it wants fresh numbers).
void send_stats(Balloon& b) {
  fill_stats(b);
  virtio::Buffer buffer{b.buffer_phys + kPfnsPerBuffer * sizeof(uint32_t),
                        kStatCount * sizeof(StatRecord), false};
  if (b.stats_vq->add(&buffer, 1, &b)) {
    b.stats_vq->kick();
    ++b.counters.stats_updates;
  }
}

// Refill the statistics buffer if the device returned it.
void answer_stats_request(Balloon& b) {
  if (b.stats_vq == nullptr || !b.stats_vq->has_used())
    return;
  void* token;
  while (b.stats_vq->collect(&token, nullptr)) {
  }
  send_stats(b);
}

// The buddy allocator's OOM hook: give back up to max(wanted, 256) pages, telling the host
// first (any context: the wait polls).
uint64_t deflate_on_oom(void* context, uint64_t wanted) {
  auto* b = static_cast<Balloon*>(context);
  if (b->counters.pages == 0 || !lock_balloon(*b, true))
    return 0;
  uint64_t freed =
      deflate_pages(*b, wanted > kOomPages ? wanted : kOomPages, virtio::Virtqueue::Wait::kSpin);
  publish_actual(*b);
  b->counters.oom_deflated += freed;
  b->counters.oom_events += freed != 0;
  uint64_t left = b->counters.pages;
  unlock_balloon(*b);
  if (b->counters.oom_events == 1)
    printk("virtio-balloon: deflate-on-oom gave back %lu pages, actual %lu\n", freed, left);
  else
    printk_level(kLogDebug, "virtio-balloon: deflate-on-oom gave back %lu pages, actual %lu\n",
                 freed, left);
  return freed;
}

// Set up the queues in compact order; false (said) on failure.
bool setup_queues(Balloon& b, virtio::Device& dev) {
  unsigned next = 0;
  b.inflate_vq = dev.setup_queue(next++);
  b.deflate_vq = dev.setup_queue(next++);
  if (b.inflate_vq == nullptr || b.deflate_vq == nullptr)
    return false;
  if (dev.has_feature(kFeatureStatsVq) && (b.stats_vq = dev.setup_queue(next++)) == nullptr)
    return false;
  if (dev.has_feature(kFeatureReporting)) {
    virtio::Virtqueue* report_vq = dev.setup_queue(next++);
    if (report_vq == nullptr)
      return false;
    page_reporting_start(report_vq, cmdline_get_number("page_reporting.delay_ms", 2000) * 1000);
  }
  return true;
}

}  // namespace

// See virtio_balloon.h.
bool balloon_init() {
  Balloon& b = g_balloon;
  virtio::Device* dev = virtio::find_device(virtio::kDeviceIdBalloon);
  if (dev == nullptr)
    return false;
  uint64_t features;
  if (!dev->negotiate(kFeatureStatsVq | kFeatureDeflateOnOom | kFeatureReporting, &features))
    return false;
  b.buffer_phys = kmem().buddy.alloc_phys(mm::kGfpKernel | mm::kGfpZero, 0);
  if (b.buffer_phys == mm::kNoPhys || !setup_queues(b, *dev)) {
    printk("virtio-balloon: setup failed\n");
    dev->reset();
    return false;
  }
  b.device = dev;
  b.blocks.init();
  b.pfns = static_cast<uint32_t*>(mm::arch::phys_to_virt(b.buffer_phys));
  b.stats = reinterpret_cast<StatRecord*>(b.pfns + kPfnsPerBuffer);
  dev->set_handler(on_interrupt, &b);
  dev->driver_ok();
  if (b.stats_vq != nullptr)
    send_stats(b);
  if (dev->has_feature(kFeatureDeflateOnOom))
    kmem().buddy.set_oom_hook(deflate_on_oom, &b);
  printk("virtio-balloon: ready (stats %s, deflate-on-oom %s, free page reporting %s)\n",
         b.stats_vq != nullptr ? "on" : "off",
         dev->has_feature(kFeatureDeflateOnOom) ? "on" : "off",
         dev->has_feature(kFeatureReporting) ? "on" : "off");
  follow_target(b);
  return true;
}

// A device was set up.
bool balloon_present() {
  return g_balloon.device != nullptr;
}

// Poll unrouted devices, then act on what is pending.
void balloon_service() {
  Balloon& b = g_balloon;
  if (b.device == nullptr)
    return;
  virtio::poll_unrouted();
  if (b.device->needs_reset())
    return;
  if (__atomic_exchange_n(&b.config_changed, 0u, __ATOMIC_ACQUIRE) != 0)
    follow_target(b);
  answer_stats_request(b);
  page_reporting_service();
}

// Copy the counters and add the reporting ones.
// The balloon's size for kMemStats (control_service.h).
uint64_t balloon_held_pages() {
  return g_balloon.counters.pages;
}

BalloonStats balloon_stats() {
  BalloonStats s = g_balloon.counters;
  PageReportingStats r = page_reporting_stats();
  s.reports = r.requests;
  s.reported_pages = r.pages;
  s.report_us = r.us;
  return s;
}

// One debug line of counters.
void balloon_print_stats() {
  if (g_balloon.device == nullptr)
    return;
  BalloonStats s = balloon_stats();
  printk_level(kLogDebug,
               "virtio-balloon: %lu pages held (target %lu), %lu inflated, %lu deflated (%lu on "
               "oom in %lu events), %lu buffers, %lu us; %lu stats updates; %lu reports of %lu "
               "pages, %lu us; %lu interrupts\n",
               s.pages, s.target, s.inflated, s.deflated, s.oom_deflated, s.oom_events, s.buffers,
               s.inflate_us, s.stats_updates, s.reports, s.reported_pages, s.report_us,
               g_balloon.device->interrupts());
}

}  // namespace hvmm::guest
