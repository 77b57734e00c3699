// PageKind: what one guest-physical address is in the picture of a stage-2 dump.
//
// A RAM address has a backing (resident, ballooned, reclaimed, reported), lies in a run of
// 2 MiB/1 GiB blocks or of 4 KiB pages, and may be write-tracked and pinned: 32 RAM kinds.
// Besides RAM an address is MMIO (a device region, or a DEVICE_* mapping) or a hole.
#pragma once

#include <cstdint>
#include <string>

#include "hvmm/v1/stage2.pb.h"

namespace hvmm::daemon::svg {

using Kind = uint8_t;
inline constexpr Kind kRamKinds = 32;
inline constexpr Kind kMmio = 32;
inline constexpr Kind kHole = 33;
inline constexpr Kind kKindCount = 34;
// A set of kinds, bit k for kind k.
using KindMask = uint64_t;

constexpr KindMask kind_bit(Kind kind) {
  return KindMask{1} << kind;
}
constexpr bool is_ram(Kind kind) {
  return kind < kRamKinds;
}

// The RAM kind of a backing (0..3, v1::Backing) and its flags.
constexpr Kind ram_kind(int backing, bool block, bool write_tracked, bool pinned) {
  return static_cast<Kind>(backing | (block ? 4 : 0) | (write_tracked ? 8 : 0) | (pinned ? 16 : 0));
}
constexpr int kind_backing(Kind kind) {
  return kind & 3;
}
constexpr bool kind_block(Kind kind) {
  return (kind & 4) != 0;
}
constexpr bool kind_write_tracked(Kind kind) {
  return (kind & 8) != 0;
}
constexpr bool kind_pinned(Kind kind) {
  return (kind & 16) != 0;
}

// "resident", "ballooned", "reclaimed", "reported".
const char* backing_word(int backing);
// The kind as the SVG's data-state carries it: "resident.block", "ballooned.page.wt.pinned",
// "mmio", "hole" (dot-separated: backing, block or page, then wt and pinned when set).
std::string kind_token(Kind kind);
// The kind for a person: "resident 2M+ blocks, write-tracked".
std::string kind_words(Kind kind);

struct Rgb {
  uint8_t r;
  uint8_t g;
  uint8_t b;
};
// The colour a kind is drawn in (the backing's; 4 KiB page runs a lighter shade).
Rgb kind_colour(Kind kind);
// "#4e79a7".
std::string colour_text(Rgb colour);

}  // namespace hvmm::daemon::svg
