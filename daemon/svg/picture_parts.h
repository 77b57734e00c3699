// The parts of the stage-2 picture (stage2_svg.cc assembles them): layout constants, what
// the dump holds per kind, and the writers of the header, the legend and the rows.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "hvmm/daemon/svg/ipa_grid.h"
#include "hvmm/daemon/svg/page_kind.h"
#include "hvmm/daemon/svg/stage2_svg.h"

namespace hvmm::daemon::svg {

// Layout, in SVG user units (pixels).
inline constexpr int kLeft = 112;  // the row labels' column
inline constexpr int kRight = 24;
inline constexpr int kFontSize = 11;  // monospace: a character is about 0.6 of it wide
inline constexpr int kRowHeight = 12;
inline constexpr int kRowPitch = 16;
inline constexpr int kGapPitch = 18;
inline constexpr int kLegendPitch = 16;
inline constexpr int kLegendColumns = 3;
inline constexpr unsigned kMaxListedDevices = 12;

// A device region to mark, with its name.
struct DeviceMark {
  uint64_t start;
  uint64_t end;
  std::string name;
};

// What the picture reports about the dump.
struct PictureFacts {
  std::array<uint64_t, kKindCount> bytes{};  // per kind, holes between pieces not counted
  std::vector<DeviceMark> devices;
  bool any_mixed = false;
  bool any_hole_cell = false;
};

PictureFacts picture_facts(const hvmm::v1::Stage2Dump& dump, std::span<const Piece> pieces,
                           const IpaGrid& grid);

// The fill of a pure cell of `kind`: a colour, or the url of its pattern.
std::string kind_fill(Kind kind);
// "&", "<", ">", '"' escaped for text and attributes.
std::string xml_escape(const std::string& text);
// "4K", "1.5M", "1G": a compact size for the ruler.
std::string short_size(uint64_t bytes);

// <defs>: one pattern per page/write-tracked kind present. Appends to `out`.
void write_defs(std::string& out, const PictureFacts& facts);
// The title lines and the legend from `y`; returns the y below them.
int write_header(std::string& out, const hvmm::v1::Stage2Dump& dump, const PictureOptions& options,
                 const PictureFacts& facts, const IpaGrid& grid, int y, int width);

}  // namespace hvmm::daemon::svg
