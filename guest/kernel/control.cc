// The control channel's driver. One page holds every buffer: kRequestSlots request slots of
// 64 bytes (device-writable, always posted on queue 0) and kResponseSlots response slots of
// 96 bytes (device-readable, on queue 1 while the device has them). Tokens are slot numbers
// plus one, checked on the way back: the used ring is written by the host. Requests are
// copied out of their slot and the slot is posted again before the request runs, so the
// host can queue the next one meanwhile and cannot change this one under the service.
#include "hvmm/guest/control.h"

#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/control_service.h"
#include "hvmm/guest/memory.h"
#include "hvmm/guest/panic.h"
#include "hvmm/guest/runtime.h"
#include "hvmm/guest/virtio.h"
#include "hvmm/guest/virtio_balloon.h"

namespace hvmm::guest {
namespace {

using control::ControlRequest;
using control::ControlResponse;

constexpr unsigned kRequestSlots = 8;
constexpr unsigned kResponseSlots = 8;
constexpr uint64_t kResponseOffset = 1024;  // response slots start here in the page
constexpr uint64_t kResponseStride = 128;
constexpr uint64_t kIdleWaitUs = 1000000;      // one halt-wait between checks of the device
constexpr uint64_t kResponseWaitUs = 5000000;  // longest wait for a response buffer back
static_assert(kRequestSlots * sizeof(ControlRequest) <= kResponseOffset);
static_assert(kResponseOffset + kResponseSlots * kResponseStride <= kPageSize);
static_assert(sizeof(ControlResponse) <= kResponseStride);

// The claimed device, its queues and buffers.
struct ControlDevice {
  virtio::Device* dev = nullptr;
  virtio::Virtqueue* requests = nullptr;
  virtio::Virtqueue* responses = nullptr;
  uint8_t* page = nullptr;  // the buffers, through the direct map
  PhysAddr page_phys;
  unsigned request_slots = 0;   // posted on queue 0 (at most its size)
  unsigned response_slots = 0;  // usable on queue 1 (at most its size)
  bool response_busy[kResponseSlots] = {};
  uint64_t served = 0;
  uint64_t bad_tokens = 0;  // used entries naming no buffer of ours
};

ControlDevice g_control;

// The token of slot `i`, and back; kNoSlot for a token that names no slot below `count`.
constexpr unsigned kNoSlot = ~0u;
void* slot_token(unsigned i) {
  return reinterpret_cast<void*>(uint64_t{i} + 1);
}
unsigned token_slot(void* token, unsigned count) {
  uint64_t v = reinterpret_cast<uint64_t>(token);
  return v >= 1 && v <= count ? static_cast<unsigned>(v - 1) : kNoSlot;
}

// Post request slot `i` (device-writable) on queue 0.
bool post_request_slot(ControlDevice& c, unsigned i) {
  virtio::Buffer b{c.page_phys + i * sizeof(ControlRequest), sizeof(ControlRequest), true};
  return c.requests->add(&b, 1, slot_token(i));
}

// Claim, negotiate VERSION_1 only, set up both queues, go live, post every request slot.
bool setup(ControlDevice& c) {
  uint64_t features = 0;
  if (!c.dev->negotiate(virtio::kFeatureVersion1, &features))
    return false;
  c.requests = c.dev->setup_queue(control::kRequestQueue, kRequestSlots);
  c.responses = c.dev->setup_queue(control::kResponseQueue, kResponseSlots);
  if (c.requests == nullptr || c.responses == nullptr)
    return false;
  c.page_phys = kmem().buddy.alloc_phys(mm::kGfpKernel | mm::kGfpZero, 0);
  if (c.page_phys == mm::kNoPhys)
    return false;
  c.page = static_cast<uint8_t*>(mm::arch::phys_to_virt(c.page_phys));
  c.request_slots = c.requests->size() < kRequestSlots ? c.requests->size() : kRequestSlots;
  c.response_slots = c.responses->size() < kResponseSlots ? c.responses->size() : kResponseSlots;
  c.dev->driver_ok();
  for (unsigned i = 0; i < c.request_slots; ++i)
    if (!post_request_slot(c, i))
      return false;
  c.requests->kick();
  return true;
}

// Take the next returned request: copy it out, post its slot again. A short write or a
// token naming no slot yields a request with a zero magic (answered kBadRequest, with the
// tag if the device wrote that far), so the host never waits for an answer in vain.
bool take_request(ControlDevice& c, ControlRequest* req, uint64_t* taken_tsc) {
  void* token = nullptr;
  uint32_t written = 0;
  if (!c.requests->collect(&token, &written))
    return false;
  *taken_tsc = arch::rdtsc();
  memset(req, 0, sizeof(*req));
  unsigned slot = token_slot(token, c.request_slots);
  if (slot == kNoSlot) {
    ++c.bad_tokens;
    return true;
  }
  uint32_t n = written < sizeof(*req) ? written : sizeof(*req);
  memcpy(req, c.page + slot * sizeof(ControlRequest), n);
  if (n < sizeof(*req))
    req->magic = 0;
  if (post_request_slot(c, slot))
    c.requests->kick();
  return true;
}

// Mark every response slot the device has returned as free again.
void reap_responses(ControlDevice& c) {
  void* token = nullptr;
  uint32_t written = 0;
  while (c.responses->collect(&token, &written)) {
    unsigned slot = token_slot(token, c.response_slots);
    if (slot == kNoSlot)
      ++c.bad_tokens;
    else
      c.response_busy[slot] = false;
  }
}

// A free response slot, waiting for the device to return one if all are out; kNoSlot if
// it returns none in time.
unsigned free_response_slot(ControlDevice& c) {
  for (;;) {
    reap_responses(c);
    for (unsigned i = 0; i < c.response_slots; ++i)
      if (!c.response_busy[i])
        return i;
    // A device that returned a chain it was not given is broken: waiting cannot help.
    if (c.responses->broken() || !c.responses->wait_used(kResponseWaitUs))
      return kNoSlot;
  }
}

// Copy the response into a free slot and hand it to the device on queue 1.
bool send_response(ControlDevice& c, const ControlResponse& response) {
  unsigned slot = free_response_slot(c);
  if (slot == kNoSlot)
    return false;
  uint64_t offset = kResponseOffset + slot * kResponseStride;
  memcpy(c.page + offset, &response, sizeof(response));
  virtio::Buffer b{c.page_phys + offset, sizeof(ControlResponse), false};
  if (!c.responses->add(&b, 1, slot_token(slot)))
    return false;
  c.response_busy[slot] = true;
  c.responses->kick();
  return true;
}

// Wait (bounded) until the device has read every response sent, so the last one is not
// lost when the VM ends right after it.
void drain_responses(ControlDevice& c) {
  for (;;) {
    reap_responses(c);
    bool busy = false;
    for (unsigned i = 0; i < c.response_slots; ++i)
      busy = busy || c.response_busy[i];
    if (!busy || !c.responses->wait_used(kResponseWaitUs))
      return;
  }
}

}  // namespace

// See control.h.
bool control_init() {
  ControlDevice& c = g_control;
  c.dev = virtio::find_device(control::kControlDeviceId);
  if (c.dev == nullptr)
    return false;
  if (!setup(c)) {
    printk("control: the device at %lx could not be set up: not serving\n", c.dev->base().value());
    c.dev->reset();
    c.dev = nullptr;
    return false;
  }
  uint32_t version = c.dev->config_read32(0);
  printk("control: device at %lx irq %u, protocol version %u (driver %u), %u request buffers\n",
         c.dev->base().value(), c.dev->irq(), version, control::kControlVersion, c.request_slots);
  return true;
}

// Take, serve, answer; halt in wait_used() while nothing is queued.
uint8_t control_serve_until_shutdown() {
  ControlDevice& c = g_control;
  printk("control: serving requests\n");
  for (;;) {
    // The balloon's target, statistics and free page reporting are served between requests
    // (its interrupts end the halt in wait_used()).
    balloon_service();
    ControlRequest req;
    uint64_t taken = 0;
    if (!take_request(c, &req, &taken)) {
      // NEEDS_RESET, or a used entry collect() refuses (an id outside the queue).
      if (c.dev->needs_reset() || c.requests->broken())
        break;
      c.requests->wait_used(kIdleWaitUs);
      continue;
    }
    ControlReply reply = control_serve(req, taken);
    ++c.served;
    if (!send_response(c, reply.response))
      break;
    if (reply.shutdown) {
      drain_responses(c);
      printk("control: shutdown with status %u after %lu requests\n", reply.exit_status, c.served);
      return reply.exit_status;
    }
  }
  printk("control: the device %s after %lu requests (%lu bad tokens): stopping\n",
         c.dev->needs_reset() ? "needs a reset" : "returned a bad buffer or none", c.served,
         c.bad_tokens);
  return kExitControlFailed;
}

}  // namespace hvmm::guest
