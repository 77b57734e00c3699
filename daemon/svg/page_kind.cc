// Names and colours of the picture's kinds (page_kind.h).
#include "hvmm/daemon/svg/page_kind.h"

#include <fmt/format.h>

namespace hvmm::daemon::svg {
namespace {

// One colour per backing, told apart also by people with the common colour-vision deficits
// (Tableau 10's blue, orange, purple, green).
constexpr Rgb kBackingColours[] = {
    {0x3b, 0x6e, 0xa5},  // resident
    {0xf2, 0x8e, 0x2b},  // ballooned
    {0x9c, 0x5f, 0xa8},  // reclaimed
    {0x59, 0xa1, 0x4f},  // reported
};
constexpr Rgb kMmioColour{0xd6, 0x27, 0x28};
constexpr Rgb kHoleColour{0xee, 0xee, 0xee};

// Halfway to white: page runs read as a lighter shade of their backing.
uint8_t lighten(uint8_t channel) {
  return static_cast<uint8_t>(channel + (255 - channel) * 2 / 5);
}

}  // namespace

const char* backing_word(int backing) {
  static constexpr const char* kWords[] = {"resident", "ballooned", "reclaimed", "reported"};
  return kWords[backing & 3];
}

std::string kind_token(Kind kind) {
  if (kind == kMmio) {
    return "mmio";
  }
  if (kind == kHole) {
    return "hole";
  }
  std::string token = backing_word(kind_backing(kind));
  token += kind_block(kind) ? ".block" : ".page";
  if (kind_write_tracked(kind)) {
    token += ".wt";
  }
  if (kind_pinned(kind)) {
    token += ".pinned";
  }
  return token;
}

std::string kind_words(Kind kind) {
  if (kind == kMmio) {
    return "MMIO (device)";
  }
  if (kind == kHole) {
    return "hole (nothing mapped)";
  }
  std::string words = backing_word(kind_backing(kind));
  words += kind_block(kind) ? " 2M+ blocks" : " 4K pages";
  if (kind_write_tracked(kind)) {
    words += ", write-tracked";
  }
  if (kind_pinned(kind)) {
    words += ", pinned";
  }
  return words;
}

Rgb kind_colour(Kind kind) {
  if (kind == kMmio) {
    return kMmioColour;
  }
  if (kind == kHole) {
    return kHoleColour;
  }
  Rgb colour = kBackingColours[kind_backing(kind)];
  if (!kind_block(kind)) {
    colour = Rgb{lighten(colour.r), lighten(colour.g), lighten(colour.b)};
  }
  return colour;
}

std::string colour_text(Rgb colour) {
  return fmt::format("#{:02x}{:02x}{:02x}", colour.r, colour.g, colour.b);
}

}  // namespace hvmm::daemon::svg
