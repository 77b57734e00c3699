// fmt formatters for the base types, so error messages can name addresses and ranges:
// "0x1000" for an address, "[0x1000, 0x3000)" for a range. Hosted code only.
#pragma once

#include <fmt/format.h>

#include "hvmm/base/address.h"

template <typename Tag>
struct fmt::formatter<hvmm::Address<Tag>> : fmt::formatter<uint64_t> {
  auto format(hvmm::Address<Tag> address, fmt::format_context& ctx) const {
    return fmt::format_to(ctx.out(), "{:#x}", address.value());
  }
};

template <typename A>
struct fmt::formatter<hvmm::AddressRange<A>> : fmt::formatter<uint64_t> {
  auto format(const hvmm::AddressRange<A>& range, fmt::format_context& ctx) const {
    return fmt::format_to(ctx.out(), "[{:#x}, {:#x})", range.start.value(),
                          range.start.value() + range.size);
  }
};
