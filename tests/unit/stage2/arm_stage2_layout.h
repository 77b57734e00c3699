// The ARMv8-A VMSAv8-64 stage-2 descriptor layout, 4 KiB granule, re-derived for the tests.
//
// Deliberately independent of hvmm/stage2/descriptor.h: the tests decode what the map writes
// into its tables with these definitions, so an encoding bug in the code under test cannot
// hide behind its own decoder. The field positions are the ARM ARM's (D8.3, "Translation
// table descriptor formats"; "Stage 2 memory region attributes"; "Stage 2 access
// permissions"):
//   [0]      valid
//   [1]      table (above the last level) or page (at the last level); 0 = block
//   [5:2]    MemAttr, with FEAT_S2FWB disabled: [5:4] outer (00 Device), [3:2] inner or, for
//            Device memory, the Device type (00 nGnRnE, 01 nGnRE)
//   [7:6]    S2AP: 00 none, 01 read-only, 10 write-only, 11 read-write
//   [9:8]    SH: 00 non-shareable, 10 outer, 11 inner
//   [10]     AF, the access flag
//   [47:12]  output address (leaf) or next-level table address (table)
//   [54:53]  XN: 00 executable, 10 execute-never at EL1 and EL0
//   [58:55]  ignored by hardware, reserved for software
// hvmm's use of the software bits (stage2/include/hvmm/stage2/attributes.h, descriptor.h):
// [56:55] where the page lives (0 resident, 1 ballooned, 2 reclaimed), [57] write-tracked,
// [58] pinned. A mapped page that is not resident is an invalid descriptor (bit 0 clear) that
// keeps every other field, its type bit included; an all-zero descriptor is a hole.
#pragma once

#include <cstdint>

#include "hvmm/stage2/attributes.h"

namespace hvmm::stage2::test {

inline constexpr uint64_t kArmValid = uint64_t{1} << 0;
inline constexpr uint64_t kArmTableOrPage = uint64_t{1} << 1;
inline constexpr uint64_t kArmAccessFlag = uint64_t{1} << 10;
inline constexpr uint64_t kArmOutputMask = ((uint64_t{1} << 48) - 1) & ~uint64_t{0xfff};
inline constexpr uint64_t kArmWriteTracked = uint64_t{1} << 57;
inline constexpr uint64_t kArmPinned = uint64_t{1} << 58;

// The MemAttr[5:2] value of a memory type.
constexpr uint64_t arm_memattr(MemoryType type) {
  switch (type) {
    case MemoryType::kDeviceNGnRnE:
      return 0b0000;
    case MemoryType::kDeviceNGnRE:
      return 0b0001;
    case MemoryType::kNormalNonCacheable:
      return 0b0101;
    case MemoryType::kNormalWriteBack:
      return 0b1111;
  }
  return 0xff;  // not a field value: any use makes the comparison fail
}

// The S2AP[7:6] value of a permission.
constexpr uint64_t arm_s2ap(Permissions permissions) {
  switch (permissions) {
    case Permissions::kNone:
      return 0b00;
    case Permissions::kReadOnly:
      return 0b01;
    case Permissions::kWriteOnly:
      return 0b10;
    case Permissions::kReadWrite:
      return 0b11;
  }
  return 0xff;
}

// The SH[9:8] value of a shareability.
constexpr uint64_t arm_sh(Shareability shareability) {
  switch (shareability) {
    case Shareability::kNonShareable:
      return 0b00;
    case Shareability::kOuterShareable:
      return 0b10;
    case Shareability::kInnerShareable:
      return 0b11;
  }
  return 0xff;
}

// The software value of [56:55].
constexpr uint64_t arm_backing(Backing backing) {
  switch (backing) {
    case Backing::kResident:
      return 0;
    case Backing::kBallooned:
      return 1;
    case Backing::kReclaimed:
      return 2;
    case Backing::kReported:
      return 3;
  }
  return 0xff;
}

// The descriptor hvmm must write for a leaf at hvmm `level` (0 page, 1 2 MiB, 2 1 GiB)
// mapping `output` with these fields.
constexpr uint64_t arm_leaf(unsigned level, uint64_t output, const Attributes& attrs,
                            const PageState& state, bool young) {
  uint64_t raw = output & kArmOutputMask;
  raw |= state.backing == Backing::kResident ? kArmValid : 0;
  raw |= level == 0 ? kArmTableOrPage : 0;
  raw |= arm_memattr(attrs.memory_type) << 2;
  raw |= arm_s2ap(attrs.permissions) << 6;
  raw |= arm_sh(attrs.shareability) << 8;
  raw |= young ? kArmAccessFlag : 0;
  raw |= attrs.executable ? 0 : uint64_t{0b10} << 53;
  raw |= arm_backing(state.backing) << 55;
  raw |= state.write_tracked ? kArmWriteTracked : 0;
  raw |= state.pinned ? kArmPinned : 0;
  return raw;
}

// A table descriptor as hvmm writes it: the next-level address, valid and table bits only.
constexpr bool arm_is_table_descriptor(uint64_t raw) {
  return (raw & ~kArmOutputMask) == (kArmValid | kArmTableOrPage);
}

// Fields of a leaf read back from raw bits, for failure messages.
struct ArmLeafFields {
  bool valid;
  bool page_type;
  unsigned memattr;
  unsigned s2ap;
  unsigned sh;
  bool af;
  uint64_t output;
  unsigned xn;
  unsigned software;
  uint64_t other_bits;  // bits outside every field: must be zero
};
constexpr ArmLeafFields arm_decode(uint64_t raw) {
  constexpr uint64_t kKnown = 0x07e0'ffff'ffff'f7ff;  // [58:53] [47:12] [10:0]
  return ArmLeafFields{
      .valid = (raw & kArmValid) != 0,
      .page_type = (raw & kArmTableOrPage) != 0,
      .memattr = static_cast<unsigned>((raw >> 2) & 0xf),
      .s2ap = static_cast<unsigned>((raw >> 6) & 0x3),
      .sh = static_cast<unsigned>((raw >> 8) & 0x3),
      .af = (raw & kArmAccessFlag) != 0,
      .output = raw & kArmOutputMask,
      .xn = static_cast<unsigned>((raw >> 53) & 0x3),
      .software = static_cast<unsigned>((raw >> 55) & 0xf),
      .other_bits = raw & ~kKnown,
  };
}

}  // namespace hvmm::stage2::test
