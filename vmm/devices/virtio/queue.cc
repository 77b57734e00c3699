// The split virtqueue: validated descriptor chains, available and used rings.
#include "hvmm/vmm/devices/virtio/queue.h"

#include <algorithm>
#include <atomic>
#include <cstring>

namespace hvmm::vmm::virtio {
namespace {

// Order two accesses to guest memory as the guest sees them. The other side is a vCPU, not a
// C++ thread, so C++'s fences do not describe it; on x86-64 (TSO) loads are not reordered
// with loads nor stores with stores, so keeping the compiler from reordering the two copies
// gives the acquire (avail index, then ring entry) and release (used element, then used
// index) the virtio spec asks for. No store is followed by a load that needs ordering here
// (event idx is not offered), which is the one case that would need MFENCE.
inline void guest_memory_order() {
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

// A descriptor as the driver lays it out (16 bytes, little-endian).
struct RawDescriptor {
  uint64_t address;
  uint32_t length;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(RawDescriptor) == kDescriptorSize);

// Whether [address, address + length) wraps the 64-bit space.
bool wraps(uint64_t address, uint64_t length) {
  return address + length < address;
}

}  // namespace

// Sum of the readable descriptors' lengths.
uint64_t DescriptorChain::readable_bytes() const {
  uint64_t bytes = 0;
  for (const Buffer& buffer : buffers) {
    bytes += buffer.writable ? 0 : buffer.length;
  }
  return bytes;
}

// Sum of the writable descriptors' lengths.
uint64_t DescriptorChain::writable_bytes() const {
  uint64_t bytes = 0;
  for (const Buffer& buffer : buffers) {
    bytes += buffer.writable ? buffer.length : 0;
  }
  return bytes;
}

// Gather from the readable descriptors in chain order.
Result<void> read_chain(GuestAccess& memory, const DescriptorChain& chain, std::span<uint8_t> out) {
  for (const Buffer& buffer : chain.buffers) {
    if (out.empty()) {
      break;
    }
    if (buffer.writable) {
      continue;
    }
    const size_t n = std::min<size_t>(out.size(), buffer.length);
    HVMM_TRY(memory.read(buffer.address, out.first(n)));
    out = out.subspan(n);
  }
  if (!out.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "chain {} has {} readable bytes, {} more were needed", chain.head,
                      chain.readable_bytes(), out.size());
  }
  return Ok();
}

// Scatter into the writable descriptors in chain order.
Result<void> write_chain(GuestAccess& memory, const DescriptorChain& chain,
                         std::span<const uint8_t> data) {
  for (const Buffer& buffer : chain.buffers) {
    if (data.empty()) {
      break;
    }
    if (!buffer.writable) {
      continue;
    }
    const size_t n = std::min<size_t>(data.size(), buffer.length);
    HVMM_TRY(memory.write(buffer.address, data.first(n)));
    data = data.subspan(n);
  }
  if (!data.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "chain {} has {} writable bytes, {} more were needed", chain.head,
                      chain.writable_bytes(), data.size());
  }
  return Ok();
}

// Check the size and the three rings, then start from index 0.
Result<void> Virtqueue::enable(GuestAccess& memory, bool indirect_allowed) {
  if (size_ == 0 || size_ > max_size_ || (size_ & (size_ - 1)) != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "queue {}: size {} is not a power of two in [1, {}]", index_, size_,
                      max_size_);
  }
  HVMM_TRY(check_ring(memory, desc_, kDescriptorSize * size_, 16, "descriptor table"));
  HVMM_TRY(check_ring(memory, avail_, 6 + 2 * uint64_t{size_}, 2, "available ring"));
  HVMM_TRY(check_ring(memory, used_, 6 + 8 * uint64_t{size_}, 4, "used ring"));
  // The used ring is written: check that the last byte takes a write (of its own value).
  uint8_t last = 0;
  const Ipa used_last = used_ + (6 + 8 * uint64_t{size_} - 1);
  HVMM_TRY(memory.read(used_last, {&last, 1}));
  auto writable = memory.write(used_last, {&last, 1});
  if (!writable) {
    return make_error(ErrorCode::kInvalidArgument, "queue {}: used ring at {} is not writable: {}",
                      index_, used_, writable.error().message);
  }
  indirect_allowed_ = indirect_allowed;
  next_avail_ = 0;
  next_used_ = 0;
  ready_ = true;
  return Ok();
}

// Forget everything the driver programmed.
void Virtqueue::reset() {
  size_ = 0;
  desc_ = avail_ = used_ = Ipa(0);
  ready_ = false;
  indirect_allowed_ = false;
  next_avail_ = next_used_ = 0;
}

// A ring must be aligned, must not wrap, and its first and last byte must be guest RAM.
Result<void> Virtqueue::check_ring(GuestAccess& memory, Ipa start, uint64_t bytes,
                                   uint64_t alignment, const char* what) const {
  if (!start.is_aligned(alignment) || wraps(start.value(), bytes)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "queue {}: {} at {} ({} bytes) is misaligned or wraps", index_, what, start,
                      bytes);
  }
  uint8_t probe = 0;
  auto first = memory.read(start, {&probe, 1});
  auto last = first ? memory.read(start + (bytes - 1), {&probe, 1}) : first;
  if (!last) {
    return make_error(ErrorCode::kInvalidArgument, "queue {}: {} [{:#x}, {:#x}) is not RAM: {}",
                      index_, what, start.value(), start.value() + bytes, last.error().message);
  }
  return Ok();
}

// A little-endian u16 of a ring.
Result<uint16_t> Virtqueue::read_u16(GuestAccess& memory, Ipa address, const char* what) const {
  uint16_t value = 0;
  auto read = memory.read(address, {reinterpret_cast<uint8_t*>(&value), sizeof(value)});
  if (!read) {
    return make_error(ErrorCode::kInvalidArgument, "queue {}: cannot read the {} at {}: {}", index_,
                      what, address, read.error().message);
  }
  return value;
}

// Take the next available head (checked against the queue size) and walk its chain.
Result<std::optional<DescriptorChain>> Virtqueue::pop(GuestAccess& memory) {
  if (!ready_) {
    return std::optional<DescriptorChain>();
  }
  auto avail_index = read_u16(memory, avail_ + 2, "available index");
  HVMM_TRY(avail_index);
  const uint16_t pending = static_cast<uint16_t>(*avail_index - next_avail_);
  if (pending == 0) {
    return std::optional<DescriptorChain>();
  }
  if (pending > size_) {
    return make_error(ErrorCode::kInvalidArgument,
                      "queue {}: available index {} is {} ahead of the device's {} (queue size "
                      "{})",
                      index_, *avail_index, pending, next_avail_, size_);
  }
  // The ring entry is read after the index that published it.
  guest_memory_order();
  auto head =
      read_u16(memory, avail_ + (4 + 2 * static_cast<uint64_t>(next_avail_ % size_)), "ring entry");
  HVMM_TRY(head);
  if (*head >= size_) {
    return make_error(ErrorCode::kInvalidArgument, "queue {}: head {} outside the {}-entry table",
                      index_, *head, size_);
  }
  auto chain = walk_chain(memory, *head);
  HVMM_TRY(chain);
  ++next_avail_;
  return std::optional<DescriptorChain>(std::move(*chain));
}

// Follow NEXT (and at most one INDIRECT table) from `head`, checking every step.
Result<DescriptorChain> Virtqueue::walk_chain(GuestAccess& memory, uint16_t head) const {
  DescriptorChain chain{head, {}};
  Ipa table = desc_;
  uint64_t table_size = size_;
  bool indirect = false;
  bool seen_writable = false;
  uint64_t at = head;
  auto refuse = [&](const char* what) {
    return make_error(ErrorCode::kInvalidArgument, "queue {}: chain {}: {}", index_, head, what);
  };
  while (true) {
    if (chain.buffers.size() >= size_) {
      return refuse("longer than the queue size (a descriptor loop?)");
    }
    RawDescriptor raw{};
    auto read =
        memory.read(table + at * kDescriptorSize, {reinterpret_cast<uint8_t*>(&raw), sizeof(raw)});
    if (!read) {
      return make_error(ErrorCode::kInvalidArgument, "queue {}: chain {}: descriptor {}: {}",
                        index_, head, at, read.error().message);
    }
    if ((raw.flags & kDescIndirect) != 0) {
      if (indirect) {
        return refuse("an indirect table inside an indirect table");
      }
      if (!indirect_allowed_) {
        return refuse("an indirect descriptor without VIRTIO_F_INDIRECT_DESC");
      }
      if ((raw.flags & kDescNext) != 0) {
        return refuse("an indirect descriptor with NEXT set");
      }
      if (raw.length == 0 || raw.length % kDescriptorSize != 0 ||
          raw.length / kDescriptorSize > size_ || wraps(raw.address, raw.length)) {
        return refuse("an indirect table that is empty, ragged, longer than the queue or wraps");
      }
      table = Ipa(raw.address);
      table_size = raw.length / kDescriptorSize;
      indirect = true;
      at = 0;
      continue;
    }
    const bool writable = (raw.flags & kDescWrite) != 0;
    if (wraps(raw.address, raw.length)) {
      return refuse("a buffer whose address + length wraps");
    }
    if (!writable && seen_writable) {
      return refuse("a readable descriptor after a writable one");
    }
    seen_writable = seen_writable || writable;
    chain.buffers.push_back(Buffer{Ipa(raw.address), raw.length, writable});
    if ((raw.flags & kDescNext) == 0) {
      return chain;
    }
    if (raw.next >= table_size) {
      return refuse("a next index outside the descriptor table");
    }
    at = raw.next;
  }
}

// Write the used element, then (after a release fence) publish the new used index.
Result<void> Virtqueue::push_used(GuestAccess& memory, uint16_t head, uint32_t written) {
  const uint32_t element[2] = {head, written};
  const Ipa slot = used_ + (4 + 8 * static_cast<uint64_t>(next_used_ % size_));
  auto wrote = memory.write(slot, {reinterpret_cast<const uint8_t*>(element), sizeof(element)});
  if (!wrote) {
    return make_error(ErrorCode::kInvalidArgument, "queue {}: cannot write the used ring at {}: {}",
                      index_, slot, wrote.error().message);
  }
  guest_memory_order();
  ++next_used_;
  const uint16_t index = next_used_;
  auto published = memory.write(used_ + 2, {reinterpret_cast<const uint8_t*>(&index), 2});
  if (!published) {
    return make_error(ErrorCode::kInvalidArgument, "queue {}: cannot write the used index: {}",
                      index_, published.error().message);
  }
  return Ok();
}

}  // namespace hvmm::vmm::virtio
