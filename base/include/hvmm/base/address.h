// Strong address types: an IPA cannot be passed where a host offset is expected.
//
// Ipa        guest-physical (intermediate physical) address, the input of stage 2.
// HostOffset offset into a VM's host memory backing (its memfd): the output of stage 2,
//            the VMM's "host physical" address.
// GuestVa    guest virtual address as the VMM sees it (the input of the guest's stage 1).
// PhysAddr   a physical address inside the guest kernel (what its stage 1 maps to).
// VirtAddr   a virtual address inside the guest kernel.
//
// Arithmetic is explicit: adding a byte count yields the same type, subtracting two
// addresses of one type yields a byte count, and nothing converts implicitly.
//
// This header is freestanding (no fmt, no allocation): the guest kernel uses it too.
// Formatting for messages lives in hvmm/base/format.h.
#pragma once

#include <compare>
#include <cstdint>

namespace hvmm {

inline constexpr uint64_t kPageShift = 12;
inline constexpr uint64_t kPageSize = uint64_t{1} << kPageShift;
inline constexpr uint64_t kLargePageSize = uint64_t{1} << 21;  // 2 MiB
inline constexpr uint64_t kHugePageSize = uint64_t{1} << 30;   // 1 GiB

constexpr bool is_aligned(uint64_t value, uint64_t alignment) {
  return (value & (alignment - 1)) == 0;
}
constexpr uint64_t align_down(uint64_t value, uint64_t alignment) {
  return value & ~(alignment - 1);
}
constexpr uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) & ~(alignment - 1);
}

// Return true when [a, a + a_size) and [b, b + b_size) share a byte. Computed on offsets, so a
// range that reaches the top of the 64-bit space (a + a_size wraps to 0) is still exact.
constexpr bool ranges_overlap(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
  if (a_size == 0 || b_size == 0) {
    return false;
  }
  return a >= b ? a - b < b_size : b - a < a_size;
}

// Address<Tag> is a 64-bit address that only mixes with addresses of the same Tag.
template <typename Tag>
class Address {
 public:
  constexpr Address() = default;
  constexpr explicit Address(uint64_t value) : value_(value) {}

  constexpr uint64_t value() const { return value_; }
  constexpr bool is_aligned(uint64_t alignment) const {
    return hvmm::is_aligned(value_, alignment);
  }
  constexpr Address align_down(uint64_t alignment) const {
    return Address(hvmm::align_down(value_, alignment));
  }
  constexpr Address align_up(uint64_t alignment) const {
    return Address(hvmm::align_up(value_, alignment));
  }
  constexpr uint64_t page_number() const { return value_ >> kPageShift; }
  constexpr uint64_t page_offset() const { return value_ & (kPageSize - 1); }

  constexpr Address operator+(uint64_t bytes) const { return Address(value_ + bytes); }
  constexpr Address operator-(uint64_t bytes) const { return Address(value_ - bytes); }
  constexpr uint64_t operator-(Address other) const { return value_ - other.value_; }
  constexpr Address& operator+=(uint64_t bytes) {
    value_ += bytes;
    return *this;
  }
  constexpr Address& operator-=(uint64_t bytes) {
    value_ -= bytes;
    return *this;
  }
  constexpr auto operator<=>(const Address&) const = default;

 private:
  uint64_t value_ = 0;
};

struct IpaTag {};
struct HostOffsetTag {};
struct GuestVaTag {};
struct PhysAddrTag {};
struct VirtAddrTag {};

using Ipa = Address<IpaTag>;
using HostOffset = Address<HostOffsetTag>;
using GuestVa = Address<GuestVaTag>;
using PhysAddr = Address<PhysAddrTag>;
using VirtAddr = Address<VirtAddrTag>;

// AddressRange<A> is the half-open range [start, start + size) of addresses of type A.
template <typename A>
struct AddressRange {
  A start;
  uint64_t size = 0;

  // The exclusive end. Callers validate with overflows() before relying on it.
  constexpr A end() const { return start + size; }
  constexpr bool overflows() const { return start.value() + size < start.value(); }
  constexpr bool empty() const { return size == 0; }
  constexpr bool contains(A address) const { return address >= start && address - start < size; }
  // True when the two ranges share a byte (exact even for a range that reaches 2^64).
  constexpr bool overlaps(const AddressRange& other) const {
    return ranges_overlap(start.value(), size, other.start.value(), other.size);
  }
  constexpr bool operator==(const AddressRange&) const = default;
};

using IpaRange = AddressRange<Ipa>;
using PhysRange = AddressRange<PhysAddr>;
using VirtRange = AddressRange<VirtAddr>;

}  // namespace hvmm
