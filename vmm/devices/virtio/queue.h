// Virtqueue: one split virtqueue as the device sees it (OASIS virtio 1.2, section 2.7).
//
// The driver's descriptor table, available ring and used ring live in guest memory and are
// reached only through GuestAccess. Everything read from them is untrusted: pop() refuses,
// with an Error naming the queue and what was wrong, an available index more than the queue
// size ahead, a head or next index outside the table, a chain longer than the queue (which
// also catches loops), an indirect table that is empty, not a multiple of 16 bytes, nested,
// combined with NEXT, longer than the queue, or used without VIRTIO_F_INDIRECT_DESC, a
// readable descriptor after a writable one, and a buffer whose address + length wraps.
// Addresses outside RAM fail when they are read or written (GuestAccess checks them). The
// device then puts itself in NEEDS_RESET; the queue is not advanced past the bad chain.
// Event index (VIRTIO_F_EVENT_IDX) is not offered: the device interrupts after every batch.
// Not thread-safe: the transport's lock serializes every use.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "hvmm/base/address.h"
#include "hvmm/base/result.h"
#include "hvmm/vmm/memory/guest_access.h"

namespace hvmm::vmm::virtio {

// Descriptor flags.
inline constexpr uint16_t kDescNext = 1;
inline constexpr uint16_t kDescWrite = 2;
inline constexpr uint16_t kDescIndirect = 4;
inline constexpr uint64_t kDescriptorSize = 16;

// Buffer is one descriptor of a chain: guest memory the device reads or (writable) writes.
struct Buffer {
  Ipa address;
  uint32_t length;
  bool writable;
};

// DescriptorChain is one available buffer: its head index and its descriptors in order.
struct DescriptorChain {
  uint16_t head = 0;
  std::vector<Buffer> buffers;

  // Bytes the device may read (readable descriptors) and write (writable ones).
  uint64_t readable_bytes() const;
  uint64_t writable_bytes() const;
};

// Copy the first out.size() readable bytes of `chain` (an Error if there are fewer).
Result<void> read_chain(GuestAccess& memory, const DescriptorChain& chain, std::span<uint8_t> out);
// Copy `data` into the writable descriptors of `chain` (an Error if they are too short).
Result<void> write_chain(GuestAccess& memory, const DescriptorChain& chain,
                         std::span<const uint8_t> data);

class Virtqueue {
 public:
  // `index` names the queue in errors; `max_size` is QueueNumMax.
  Virtqueue(unsigned index, uint16_t max_size) : index_(index), max_size_(max_size) {}

  // Registers the driver programs (through the transport) while the queue is not ready.
  void set_size(uint16_t size) { size_ = size; }
  void set_descriptor_table(Ipa address) { desc_ = address; }
  void set_available_ring(Ipa address) { avail_ = address; }
  void set_used_ring(Ipa address) { used_ = address; }
  uint16_t max_size() const { return max_size_; }
  uint16_t size() const { return size_; }
  Ipa descriptor_table() const { return desc_; }
  Ipa available_ring() const { return avail_; }
  Ipa used_ring() const { return used_; }

  // QueueReady = 1: check the size (a power of two, 1..max), the rings' alignment and that
  // each ring's first and last byte are guest RAM, then start at index 0.
  Result<void> enable(GuestAccess& memory, bool indirect_allowed);
  // QueueReady = 0 or a device reset: stop using the rings (and forget them on reset).
  void disable() { ready_ = false; }
  void reset();
  bool ready() const { return ready_; }

  // The next available chain, std::nullopt when the driver made none available.
  Result<std::optional<DescriptorChain>> pop(GuestAccess& memory);
  // Return chain `head` to the driver with `written` bytes written into it.
  Result<void> push_used(GuestAccess& memory, uint16_t head, uint32_t written);
  // Chains popped and returned so far (the device's free-running indexes).
  uint16_t next_available() const { return next_avail_; }
  uint16_t next_used() const { return next_used_; }

 private:
  Result<uint16_t> read_u16(GuestAccess& memory, Ipa address, const char* what) const;
  Result<void> check_ring(GuestAccess& memory, Ipa start, uint64_t bytes, uint64_t alignment,
                          const char* what) const;
  Result<DescriptorChain> walk_chain(GuestAccess& memory, uint16_t head) const;

  unsigned index_;
  uint16_t max_size_;
  uint16_t size_ = 0;
  Ipa desc_;
  Ipa avail_;
  Ipa used_;
  bool ready_ = false;
  bool indirect_allowed_ = false;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
};

}  // namespace hvmm::vmm::virtio
