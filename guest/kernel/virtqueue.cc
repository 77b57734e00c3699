// The driver side of a split virtqueue (virtio spec 2.7): free descriptors are chained through
// `next`; add() links a chain, publishes its head in the available ring and bumps avail->idx
// after the ring entry is visible; collect() follows used->idx. x86 keeps stores in order, so a
// compiler barrier orders ring writes before the index; a full fence orders the index store
// before reading used->flags to decide whether to notify (virtio spec 2.7.7).
#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/percpu.h"
#include "hvmm/guest/time.h"
#include "hvmm/guest/virtio.h"

namespace hvmm::guest::virtio {
namespace {

constexpr uint16_t kDescNext = 1;
constexpr uint16_t kDescWrite = 2;
constexpr uint16_t kUsedNoNotify = 1;
constexpr uint32_t kRegQueueNotify = 0x050;

// Keep the compiler from moving memory accesses across this point.
inline void compiler_barrier() {
  asm volatile("" : : : "memory");
}

// Round `v` up to a multiple of `a` (a power of two).
constexpr uint64_t round_up(uint64_t v, uint64_t a) {
  return (v + a - 1) & ~(a - 1);
}

}  // namespace

// Descriptor table entry (16 bytes).
struct Virtqueue::Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

// Available ring: flags, idx, ring[size], used_event.
struct Virtqueue::Avail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[];
};

// Used ring: flags, idx, {id, len}[size], avail_event.
struct Virtqueue::Used {
  struct Elem {
    uint32_t id;
    uint32_t len;
  };
  uint16_t flags;
  uint16_t idx;
  Elem ring[];
};

// The available ring follows the descriptor table (2-byte alignment).
uint64_t Virtqueue::avail_offset(unsigned size) {
  return uint64_t{16} * size;
}

// The used ring after the available ring, 4-byte aligned.
uint64_t Virtqueue::used_offset(unsigned size) {
  return round_up(avail_offset(size) + 6 + uint64_t{2} * size, 4);
}

// The token array (one pointer per descriptor head) after the used ring.
uint64_t Virtqueue::tokens_offset(unsigned size) {
  return round_up(used_offset(size) + 6 + uint64_t{8} * size, 8);
}

// The in-flight flags (one byte per descriptor head) after the tokens.
uint64_t Virtqueue::in_flight_offset(unsigned size) {
  return tokens_offset(size) + uint64_t{8} * size;
}

// Everything above for `size` entries.
uint64_t Virtqueue::memory_bytes(unsigned size) {
  return in_flight_offset(size) + size;
}

// Lay the rings out in `memory` and chain all descriptors on the free list.
void Virtqueue::init(Device* device, unsigned index, unsigned size, void* memory, PhysAddr phys) {
  auto* base = static_cast<uint8_t*>(memory);
  device_ = device;
  phys_ = phys;
  index_ = index;
  size_ = size;
  desc_ = reinterpret_cast<Desc*>(base);
  avail_ = reinterpret_cast<Avail*>(base + avail_offset(size));
  used_ = reinterpret_cast<Used*>(base + used_offset(size));
  tokens_ = reinterpret_cast<void**>(base + tokens_offset(size));
  in_flight_ = base + in_flight_offset(size);
  broken_ = false;
  for (unsigned i = 0; i + 1 < size; ++i)
    desc_[i].next = static_cast<uint16_t>(i + 1);
  free_head_ = 0;
  free_count_ = size;
}

// Fill `count` free descriptors, link them, publish the head.
bool Virtqueue::add(const Buffer* buffers, unsigned count, void* token) {
  if (count == 0 || count > free_count_)
    return false;
  unsigned head = free_head_;
  unsigned d = head;
  for (unsigned i = 0; i < count; ++i) {
    Desc& desc = desc_[d];
    desc.addr = buffers[i].addr.value();
    desc.len = buffers[i].len;
    desc.flags = static_cast<uint16_t>((buffers[i].device_writable ? kDescWrite : 0) |
                                       (i + 1 < count ? kDescNext : 0));
    if (i + 1 < count)
      d = desc.next;
  }
  free_head_ = desc_[d].next;
  free_count_ -= count;
  tokens_[head] = token;
  in_flight_[head] = 1;
  avail_->ring[avail_idx_ & (size_ - 1)] = static_cast<uint16_t>(head);
  compiler_barrier();
  ++avail_idx_;
  __atomic_store_n(&avail_->idx, avail_idx_, __ATOMIC_RELEASE);
  ++pending_;
  ++added_;
  return true;
}

// Notify unless nothing is pending or the device suppresses notifications.
void Virtqueue::kick() {
  if (pending_ == 0)
    return;
  pending_ = 0;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if ((__atomic_load_n(&used_->flags, __ATOMIC_ACQUIRE) & kUsedNoNotify) != 0)
    return;
  device_->write_reg(kRegQueueNotify, index_);
  ++kicks_;
}

// A returned chain is there when used->idx moved past what was collected (never once the
// device returned a chain it was not given: see collect()).
bool Virtqueue::has_used() const {
  return !broken_ && __atomic_load_n(&used_->idx, __ATOMIC_ACQUIRE) != last_used_;
}

// Take one used element; give its chain back to the free list. A head id outside the table
// or not in flight (a broken device) is not followed: it would corrupt the free list. The
// queue is marked broken instead, so has_used() and wait_used() stop reporting work and no
// waiter spins on an entry that can never be collected.
bool Virtqueue::collect(void** token, uint32_t* written) {
  if (!has_used())
    return false;
  const Used::Elem& elem = used_->ring[last_used_ & (size_ - 1)];
  uint32_t head = elem.id;
  if (head >= size_ || in_flight_[head] == 0) {
    broken_ = true;
    return false;
  }
  in_flight_[head] = 0;
  if (written != nullptr)
    *written = elem.len;
  if (token != nullptr)
    *token = tokens_[head];
  ++last_used_;
  unsigned d = head;
  unsigned n = 1;
  while ((desc_[d].flags & kDescNext) != 0 && n < size_) {
    d = desc_[d].next;
    ++n;
  }
  desc_[d].next = static_cast<uint16_t>(free_head_);
  free_head_ = head;
  free_count_ += n;
  ++collected_;
  return true;
}

// Halt between interrupts (kHalt on CPU 0 with a routed IRQ) or spin on the used index,
// until used or timeout. Spinning touches the device's registers (status, and the interrupt
// status of an unrouted device) only every kSpinsPerCheck rounds: each access is a VM exit.
bool Virtqueue::wait_used(uint64_t timeout_us, Wait how) {
  constexpr unsigned kSpinsPerCheck = 1024;
  const uint64_t start = arch::rdtsc();
  const uint64_t limit = timeout_us * (tsc_hz() / 1000000);
  const bool halt = how == Wait::kHalt && device_->irq_routed() && this_cpu().cpu == 0;
  for (unsigned round = 0; !has_used(); ++round) {
    if (broken_)
      return false;
    if (halt) {
      if (device_->needs_reset())
        return false;
      uint64_t flags = arch::read_flags();
      asm volatile("sti; hlt" : : : "memory");
      if ((flags & (1u << 9)) == 0)
        arch::cli();
    } else if (round % kSpinsPerCheck == kSpinsPerCheck - 1) {
      if (device_->needs_reset())
        return false;
      if (!device_->irq_routed())
        device_->poll();
    } else {
      arch::pause();
    }
    if (arch::rdtsc() - start > limit)
      return has_used();
  }
  return true;
}

}  // namespace hvmm::guest::virtio
