// Stage-2 memory attributes and per-page software state, as users and the VMM see them.
//
// These are the decoded meanings; descriptor.h holds their bit encodings (ARM ARM D8.3,
// "Stage 2 memory region attributes" and "Stage 2 access permissions").
#pragma once

#include <cstdint>
#include <string>

namespace hvmm::stage2 {

// S2AP[7:6]: what the guest may do. Encoded exactly as the ARM ARM does.
enum class Permissions : uint8_t {
  kNone = 0b00,
  kReadOnly = 0b01,
  kWriteOnly = 0b10,
  kReadWrite = 0b11,
};

constexpr bool allows_read(Permissions p) {
  return (static_cast<uint8_t>(p) & 0b01) != 0;
}
constexpr bool allows_write(Permissions p) {
  return (static_cast<uint8_t>(p) & 0b10) != 0;
}

// MemAttr[5:2] with FEAT_S2FWB clear: MemAttr[3:2] outer, [1:0] inner cacheability.
enum class MemoryType : uint8_t {
  kDeviceNGnRnE = 0b0000,
  kDeviceNGnRE = 0b0001,
  kNormalNonCacheable = 0b0101,
  kNormalWriteBack = 0b1111,
};

// SH[9:8].
enum class Shareability : uint8_t {
  kNonShareable = 0b00,
  kOuterShareable = 0b10,
  kInnerShareable = 0b11,
};

// Attributes of a mapping that the guest's accesses are checked against.
struct Attributes {
  Permissions permissions = Permissions::kReadWrite;
  MemoryType memory_type = MemoryType::kNormalWriteBack;
  Shareability shareability = Shareability::kInnerShareable;
  bool executable = true;  // XN[54:53] == 0b00 when true, 0b10 (XN at EL1 and EL0) when false

  constexpr bool operator==(const Attributes&) const = default;
};

// Normal RAM as a guest expects it: RWX, write-back, inner shareable.
inline constexpr Attributes kRamAttributes{};

// Where the data of a mapped page currently lives. Only kResident pages have a valid
// descriptor; the others are annotated invalid descriptors that keep their output address
// and attributes, so the page can come back at the same host offset (ARM ARM D8.3: bits
// [63:1] of an invalid descriptor are ignored by hardware and free for software).
// What a guest access to a non-resident page does is the VMM's business, not the map's: the
// VMM releases the backing of every non-resident page (vmm/memory/README.md), and a touch
// makes the page resident again (zero filled, or restored from the pool when reclaimed).
enum class Backing : uint8_t {
  kResident = 0,   // backed by host memory (maybe not yet touched), guest access translates
  kBallooned = 1,  // given back by the guest's balloon driver: its contents need not be kept
  kReclaimed = 2,  // taken by the host without the guest's help: its contents must be kept
  kReported = 3,   // reported free by the guest (free page reporting): released, still the
                   // guest's, zero on its next touch
};

// The software state of one page (descriptor bits [58:55]).
struct PageState {
  Backing backing = Backing::kResident;
  bool write_tracked = false;  // writes are reported (dirty tracking, userfaultfd WP)
  bool pinned = false;         // may not be ballooned, reclaimed or unmapped

  constexpr bool operator==(const PageState&) const = default;
};

// A partial update of PageState: fields left empty are kept.
struct PageStateUpdate {
  bool set_backing = false;
  Backing backing = Backing::kResident;
  bool set_write_tracked = false;
  bool write_tracked = false;
  bool set_pinned = false;
  bool pinned = false;

  // Return `state` with this update applied.
  constexpr PageState apply(PageState state) const {
    if (set_backing)
      state.backing = backing;
    if (set_write_tracked)
      state.write_tracked = write_tracked;
    if (set_pinned)
      state.pinned = pinned;
    return state;
  }
};

// "rw-x", "normal-wb", "inner": short names used by dumps and logs.
std::string permissions_name(Permissions permissions, bool executable);
const char* memory_type_name(MemoryType type);
const char* shareability_name(Shareability shareability);
const char* backing_name(Backing backing);

}  // namespace hvmm::stage2
