// Strong address types: an IPA cannot be passed where a host offset is expected.
//
// Ipa        guest-physical (intermediate physical) address, the input of stage 2.
// HostOffset offset into a VM's host memory backing (its memfd): the output of stage 2,
//            the VMM's "host physical" address.
// GuestVa    guest virtual address, the input of the guest's stage 1.
//
// Arithmetic is explicit: adding a byte count yields the same type, subtracting two
// addresses of one type yields a byte count, and nothing converts implicitly.
#pragma once

#include <compare>
#include <cstdint>

#include <fmt/format.h>

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
  constexpr auto operator<=>(const Address&) const = default;

 private:
  uint64_t value_ = 0;
};

struct IpaTag {};
struct HostOffsetTag {};
struct GuestVaTag {};

using Ipa = Address<IpaTag>;
using HostOffset = Address<HostOffsetTag>;
using GuestVa = Address<GuestVaTag>;

// IpaRange is the half-open guest-physical range [start, start + size).
struct IpaRange {
  Ipa start;
  uint64_t size = 0;

  // The exclusive end. Callers validate with overflows() before relying on it.
  constexpr Ipa end() const { return start + size; }
  constexpr bool overflows() const { return start.value() + size < start.value(); }
  constexpr bool empty() const { return size == 0; }
  constexpr bool contains(Ipa ipa) const { return ipa >= start && ipa - start < size; }
  constexpr bool operator==(const IpaRange&) const = default;
};

}  // namespace hvmm

// "0x1000" for addresses; "[0x1000, 0x3000)" for ranges.
template <typename Tag>
struct fmt::formatter<hvmm::Address<Tag>> : fmt::formatter<uint64_t> {
  auto format(hvmm::Address<Tag> address, fmt::format_context& ctx) const {
    return fmt::format_to(ctx.out(), "{:#x}", address.value());
  }
};
template <>
struct fmt::formatter<hvmm::IpaRange> : fmt::formatter<uint64_t> {
  auto format(const hvmm::IpaRange& range, fmt::format_context& ctx) const {
    return fmt::format_to(ctx.out(), "[{:#x}, {:#x})", range.start.value(),
                          range.start.value() + range.size);
  }
};
