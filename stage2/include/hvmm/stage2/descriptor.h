// ARMv8-A VMSAv8-64 stage-2 translation table descriptors, 4 KiB granule.
//
// Levels are numbered as in Hafnium: level 0 is the page level (ARM level 3), level 1 maps
// 2 MiB blocks (ARM level 2), level 2 maps 1 GiB blocks (ARM level 1), level 3 is ARM level 0.
// Counting up from the leaves makes the arithmetic uniform: an entry at level L spans
// 4 KiB << (9 * L).
//
// Bit layout (ARM ARM D8.3 "Translation table descriptor formats"):
//   [0]      valid
//   [1]      1: table (levels 1..3) or page (level 0); 0: block (levels 1, 2)
//   [5:2]    MemAttr           (block/page)
//   [7:6]    S2AP              (block/page)
//   [9:8]    SH                (block/page)
//   [10]     AF                (block/page)
//   [47:12]  output address / next-level table address
//   [52]     Contiguous hint   (block/page)
//   [54:53]  XN                (block/page)
//   [58:55]  software: [56:55] Backing, [57] write-tracked, [58] pinned
// An invalid descriptor (bit 0 clear) with any other bit set is an annotated leaf: a mapped
// page that is not resident (ballooned, reclaimed or reported). Hardware ignores bits [63:1] there.
#pragma once

#include <cstdint>

#include "hvmm/base/address.h"
#include "hvmm/base/levels.h"
#include "hvmm/stage2/attributes.h"

namespace hvmm::stage2 {

// Level arithmetic (level_shift, level_size, level_index, kEntriesPerTable) is hvmm/base/levels.h.
inline constexpr unsigned kPageLevel = 0;
inline constexpr unsigned kMaxLevel = 3;
inline constexpr unsigned kMaxBlockLevel = 2;  // 1 GiB blocks with a 4 KiB granule

namespace bits {
inline constexpr uint64_t kValid = uint64_t{1} << 0;
inline constexpr uint64_t kTableOrPage = uint64_t{1} << 1;
inline constexpr unsigned kMemAttrShift = 2;
inline constexpr uint64_t kMemAttrMask = uint64_t{0xf} << kMemAttrShift;
inline constexpr unsigned kS2apShift = 6;
inline constexpr uint64_t kS2apMask = uint64_t{0x3} << kS2apShift;
inline constexpr unsigned kShShift = 8;
inline constexpr uint64_t kShMask = uint64_t{0x3} << kShShift;
inline constexpr uint64_t kAccessFlag = uint64_t{1} << 10;
inline constexpr uint64_t kAddressMask = 0x0000'ffff'ffff'f000;  // [47:12]
inline constexpr uint64_t kContiguous = uint64_t{1} << 52;
inline constexpr unsigned kXnShift = 53;
inline constexpr uint64_t kXnMask = uint64_t{0x3} << kXnShift;
inline constexpr uint64_t kXnAll = uint64_t{0b10} << kXnShift;  // XN at EL1 and EL0
inline constexpr unsigned kBackingShift = 55;
inline constexpr uint64_t kBackingMask = uint64_t{0x3} << kBackingShift;
inline constexpr uint64_t kWriteTracked = uint64_t{1} << 57;
inline constexpr uint64_t kPinned = uint64_t{1} << 58;
inline constexpr uint64_t kSoftwareMask = uint64_t{0xf} << 55;
// Every attribute a leaf carries besides its address and valid/type bits.
inline constexpr uint64_t kLeafAttributeMask =
    kMemAttrMask | kS2apMask | kShMask | kAccessFlag | kContiguous | kXnMask | kSoftwareMask;
}  // namespace bits

// The positions above are the ARM ARM's; these checks keep the masks disjoint and in place.
static_assert((bits::kAddressMask & bits::kLeafAttributeMask) == 0);
static_assert((bits::kMemAttrMask | bits::kS2apMask | bits::kShMask) == 0x3fc);
static_assert(bits::kXnMask == 0x0060'0000'0000'0000);
static_assert(bits::kSoftwareMask == 0x0780'0000'0000'0000);
static_assert(level_size(1) == kLargePageSize && level_size(2) == kHugePageSize);

// Descriptor is one 64-bit table entry, typed by what its bits say.
class Descriptor {
 public:
  constexpr Descriptor() = default;
  constexpr explicit Descriptor(uint64_t raw) : raw_(raw) {}

  // A leaf mapping `output` at `level` (page at 0, block above) with these attributes.
  static constexpr Descriptor leaf(unsigned level, HostOffset output, const Attributes& attrs,
                                   PageState state, bool young);
  // A table descriptor pointing at the next-level table whose address is `table`.
  static constexpr Descriptor table(uint64_t table_address) {
    return Descriptor((table_address & bits::kAddressMask) | bits::kTableOrPage | bits::kValid);
  }

  constexpr uint64_t raw() const { return raw_; }
  constexpr bool valid() const { return (raw_ & bits::kValid) != 0; }
  constexpr bool empty() const { return raw_ == 0; }
  // A table descriptor: valid, type bit set, above the page level.
  constexpr bool is_table(unsigned level) const {
    return level > kPageLevel && valid() && (raw_ & bits::kTableOrPage) != 0;
  }
  // A leaf: a valid page or block, or an annotated (non-resident) mapped page or block.
  constexpr bool is_leaf(unsigned level) const { return !empty() && !is_table(level); }

  constexpr uint64_t address() const { return raw_ & bits::kAddressMask; }
  constexpr HostOffset output() const { return HostOffset(address()); }
  constexpr Attributes attributes() const;
  constexpr PageState state() const;
  constexpr bool young() const { return (raw_ & bits::kAccessFlag) != 0; }

  // Same descriptor with another output address (used when splitting blocks).
  constexpr Descriptor with_output(HostOffset output) const {
    return Descriptor((raw_ & ~bits::kAddressMask) | (output.value() & bits::kAddressMask));
  }
  // Same leaf re-encoded for another level (page ↔ block differ only in the type bit).
  constexpr Descriptor at_level(unsigned level) const;
  constexpr Descriptor with_attributes(const Attributes& attrs) const;
  constexpr Descriptor with_state(PageState state) const;
  constexpr Descriptor with_young(bool young) const {
    return Descriptor(young ? raw_ | bits::kAccessFlag : raw_ & ~bits::kAccessFlag);
  }

  constexpr bool operator==(const Descriptor&) const = default;

 private:
  uint64_t raw_ = 0;
};

constexpr Attributes Descriptor::attributes() const {
  return Attributes{
      .permissions = static_cast<Permissions>((raw_ & bits::kS2apMask) >> bits::kS2apShift),
      .memory_type = static_cast<MemoryType>((raw_ & bits::kMemAttrMask) >> bits::kMemAttrShift),
      .shareability = static_cast<Shareability>((raw_ & bits::kShMask) >> bits::kShShift),
      .executable = (raw_ & bits::kXnMask) == 0,
  };
}

constexpr PageState Descriptor::state() const {
  return PageState{
      .backing = static_cast<Backing>((raw_ & bits::kBackingMask) >> bits::kBackingShift),
      .write_tracked = (raw_ & bits::kWriteTracked) != 0,
      .pinned = (raw_ & bits::kPinned) != 0,
  };
}

constexpr Descriptor Descriptor::with_attributes(const Attributes& attrs) const {
  uint64_t raw = raw_ & ~(bits::kMemAttrMask | bits::kS2apMask | bits::kShMask | bits::kXnMask);
  raw |= uint64_t{static_cast<uint8_t>(attrs.memory_type)} << bits::kMemAttrShift;
  raw |= uint64_t{static_cast<uint8_t>(attrs.permissions)} << bits::kS2apShift;
  raw |= uint64_t{static_cast<uint8_t>(attrs.shareability)} << bits::kShShift;
  if (!attrs.executable)
    raw |= bits::kXnAll;
  return Descriptor(raw);
}

// The valid bit follows the backing: only resident pages translate.
constexpr Descriptor Descriptor::with_state(PageState state) const {
  uint64_t raw = raw_ & ~(bits::kSoftwareMask | bits::kValid);
  raw |= uint64_t{static_cast<uint8_t>(state.backing)} << bits::kBackingShift;
  if (state.write_tracked)
    raw |= bits::kWriteTracked;
  if (state.pinned)
    raw |= bits::kPinned;
  if (state.backing == Backing::kResident)
    raw |= bits::kValid;
  return Descriptor(raw);
}

constexpr Descriptor Descriptor::at_level(unsigned level) const {
  uint64_t raw = raw_ & ~bits::kTableOrPage;
  if (level == kPageLevel)
    raw |= bits::kTableOrPage;
  return Descriptor(raw);
}

constexpr Descriptor Descriptor::leaf(unsigned level, HostOffset output, const Attributes& attrs,
                                      PageState state, bool young) {
  // Annotated leaves keep the type bit of their level too, so at_level() stays uniform and
  // an annotated page can never be mistaken for a table (tables are valid by definition).
  return Descriptor(output.value() & bits::kAddressMask)
      .at_level(level)
      .with_attributes(attrs)
      .with_state(state)
      .with_young(young);
}

// Encoding checks against hand-assembled ARM descriptors.
static_assert(Descriptor::leaf(0, HostOffset(0x1000), kRamAttributes, {}, true).raw() ==
              0x0000'0000'0000'17ff);
static_assert(Descriptor::leaf(1, HostOffset(0x20'0000), kRamAttributes, {}, true).raw() ==
              0x0000'0000'0020'07fd);
static_assert(Descriptor::table(0x7f00'1234'5000).raw() == 0x0000'7f00'1234'5003);
static_assert(
    !Descriptor::leaf(0, HostOffset(0), kRamAttributes, {Backing::kBallooned}, false).valid());
// Every Backing fits bits [56:55] and reads back as itself.
static_assert(Descriptor::leaf(0, HostOffset(0), kRamAttributes, {Backing::kReported}, false)
                  .state()
                  .backing == Backing::kReported);

}  // namespace hvmm::stage2
