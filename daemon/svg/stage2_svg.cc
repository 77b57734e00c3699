// The picture of a stage-2 dump: facts, ruler, rows, gaps and device marks (stage2_svg.h).
#include "hvmm/daemon/svg/stage2_svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

#include "hvmm/daemon/args/human.h"
#include "hvmm/daemon/svg/picture_parts.h"

namespace hvmm::daemon::svg {
namespace {

constexpr int kRulerDivisions = 8;

// Hex digits that every row label uses: enough for the last address drawn, at least 8.
int hex_digits(uint64_t end) {
  int digits = 8;
  while (digits < 16 && end - 1 >= (uint64_t{1} << (4 * digits))) {
    ++digits;
  }
  return digits;
}

// Offsets inside a row, above the first one: "+0" ... "+4M".
int write_ruler(std::string& out, const IpaGrid& grid, int y) {
  auto it = std::back_inserter(out);
  const uint64_t step = grid.row_span / kRulerDivisions;
  const int px_step = static_cast<int>(grid.pixels_per_row) / kRulerDivisions;
  out += "<g class=\"ruler\">\n";
  for (int i = 0; i <= kRulerDivisions; ++i) {
    const int x = kLeft + i * px_step;
    const uint64_t offset = step * static_cast<uint64_t>(i);
    fmt::format_to(it,
                   "<text class=\"ruler-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" "
                   "data-offset=\"{:#x}\">+{}</text><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" "
                   "stroke=\"#555555\"/>\n",
                   x, y + 10, offset, offset == 0 ? "0" : short_size(offset), x, y + 13, x, y + 18);
  }
  out += "</g>\n";
  return y + 22;
}

// One cell as a rect; a pinned pure cell also gets its underline.
void write_cell(std::string& out, const Cell& cell, const Row& row, const IpaGrid& grid, int y) {
  auto it = std::back_inserter(out);
  const uint64_t x = kLeft + (cell.start - row.start) / grid.pixel_bytes;
  const uint64_t width = (cell.end - cell.start) / grid.pixel_bytes;
  if (cell.pure()) {
    const Kind kind = cell.kind();
    fmt::format_to(it,
                   "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" "
                   "data-start=\"{:#x}\" data-size=\"{:#x}\" data-state=\"{}\"/>\n",
                   x, y, width, kRowHeight, kind_fill(kind), cell.start, cell.end - cell.start,
                   kind_token(kind));
    if (is_ram(kind) && kind_pinned(kind)) {
      fmt::format_to(it,
                     "<rect class=\"pin\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"3\" "
                     "fill=\"#1a1a1a\"/>\n",
                     x, y + kRowHeight - 3, width);
    }
    return;
  }
  std::string kinds;
  for (Kind kind = 0; kind < kKindCount; ++kind) {
    if (cell.kinds & kind_bit(kind)) {
      kinds += (kinds.empty() ? "" : " ") + kind_token(kind);
    }
  }
  fmt::format_to(it,
                 "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" "
                 "data-start=\"{:#x}\" data-size=\"{:#x}\" data-state=\"mixed\" "
                 "data-kinds=\"{}\"/>\n",
                 x, y, width, kRowHeight, colour_text(cell.colour), cell.start,
                 cell.end - cell.start, kinds);
}

// A run of rows with nothing in them, [start, end), as one labelled line.
int write_gap(std::string& out, uint64_t start, uint64_t end, int y, int width) {
  fmt::format_to(std::back_inserter(out),
                 "<g class=\"gap\" data-start=\"{:#x}\" data-size=\"{:#x}\"><line x1=\"{}\" "
                 "y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999999\" stroke-dasharray=\"4,3\"/>"
                 "<text x=\"{}\" y=\"{}\" fill=\"#666666\">nothing mapped: [{:#x}, {:#x}), "
                 "{}</text></g>\n",
                 start, end - start, kLeft, y + 4, width - kRight, y + 4, kLeft + 8, y + 13, start,
                 end, args::human_size(end - start));
  return y + kGapPitch;
}

// Every row with its label and cells, gaps between; returns the y below and each row's y.
int write_rows(std::string& out, const IpaGrid& grid, int y, int width, std::vector<int>& row_y) {
  auto it = std::back_inserter(out);
  const int digits = hex_digits(grid.end);
  uint64_t expected = 0;
  out += "<g class=\"rows\">\n";
  for (const Row& row : grid.rows) {
    if (row.start != expected) {
      y = write_gap(out, expected, row.start, y, width);
    }
    row_y.push_back(y);
    fmt::format_to(it,
                   "<g class=\"row\" data-start=\"{:#x}\" data-size=\"{:#x}\"><text "
                   "class=\"row-label\" x=\"{}\" y=\"{}\" text-anchor=\"end\" "
                   "data-ipa=\"{:#x}\">0x{:0{}x}</text>\n",
                   row.start, grid.row_span, kLeft - 6, y + 10, row.start, row.start, digits);
    for (const Cell& cell : row.cells) {
      write_cell(out, cell, row, grid, y);
    }
    out += "</g>\n";
    y += kRowPitch;
    expected = row.start + grid.row_span;
  }
  out += "</g>\n";
  return y;
}

// A red outline around every device region (at least 2 px wide, so a 4 KiB window shows at
// any scale), in the row it starts in.
void write_device_marks(std::string& out, const PictureFacts& facts, const IpaGrid& grid,
                        const std::vector<int>& row_y) {
  auto it = std::back_inserter(out);
  out += "<g class=\"mmio-marks\">\n";
  for (const DeviceMark& device : facts.devices) {
    auto row = std::upper_bound(grid.rows.begin(), grid.rows.end(), device.start,
                                [](uint64_t ipa, const Row& r) { return ipa < r.start; });
    if (row == grid.rows.begin()) {
      continue;
    }
    --row;
    const uint64_t offset = device.start - row->start;
    if (offset >= grid.row_span) {
      continue;
    }
    const uint64_t x = kLeft + offset / grid.pixel_bytes;
    const uint64_t bytes = std::min(device.end - device.start, grid.row_span - offset);
    const uint64_t width = std::max<uint64_t>(2, bytes / grid.pixel_bytes);
    fmt::format_to(it,
                   "<rect class=\"mmio-mark\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
                   "fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\" data-start=\"{:#x}\" "
                   "data-size=\"{:#x}\" data-name=\"{}\"><title>{} [{:#x}, {:#x})</title></rect>\n",
                   x, row_y[static_cast<size_t>(row - grid.rows.begin())] - 2, width,
                   kRowHeight + 4, device.start, device.end - device.start, xml_escape(device.name),
                   xml_escape(device.name), device.start, device.end);
  }
  out += "</g>\n";
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        // Control characters are not allowed in XML 1.0: a name never needs them.
        out += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
    }
  }
  return out;
}

std::string short_size(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"", "K", "M", "G", "T", "P"};
  size_t unit = 0;
  uint64_t scale = 1;
  while (unit + 1 < std::size(kUnits) && bytes >= scale * 1024) {
    scale *= 1024;
    ++unit;
  }
  if (bytes % scale == 0) {
    return fmt::format("{}{}", bytes / scale, kUnits[unit]);
  }
  return fmt::format("{:.1f}{}", static_cast<double>(bytes) / static_cast<double>(scale),
                     kUnits[unit]);
}

PictureFacts picture_facts(const hvmm::v1::Stage2Dump& dump, std::span<const Piece> pieces,
                           const IpaGrid& grid) {
  PictureFacts facts;
  for (const Piece& piece : pieces) {
    facts.bytes[piece.kind] += piece.end - piece.start;
  }
  for (const hvmm::v1::DeviceRegion& device : dump.devices()) {
    facts.devices.push_back(
        {device.range().start(), device.range().start() + device.range().size(), device.name()});
  }
  for (const hvmm::v1::Mapping& mapping : dump.mappings()) {
    if (mapping.memory_type() == hvmm::v1::MEMORY_TYPE_DEVICE_NGNRE ||
        mapping.memory_type() == hvmm::v1::MEMORY_TYPE_DEVICE_NGNRNE) {
      facts.devices.push_back({mapping.range().start(),
                               mapping.range().start() + mapping.range().size(), "device mapping"});
    }
  }
  std::stable_sort(facts.devices.begin(), facts.devices.end(),
                   [](const DeviceMark& a, const DeviceMark& b) { return a.start < b.start; });
  for (const Row& row : grid.rows) {
    for (const Cell& cell : row.cells) {
      facts.any_mixed |= !cell.pure();
      facts.any_hole_cell |= (cell.kinds & kind_bit(kHole)) != 0;
    }
  }
  return facts;
}

Result<std::string> render_stage2_svg(const hvmm::v1::Stage2Dump& dump,
                                      const PictureOptions& options) {
  if (options.pixels_per_row < kRulerDivisions || options.max_rows == 0 ||
      (options.pixels_per_row & (options.pixels_per_row - 1)) != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "picture: pixels_per_row must be a power of two of at least {} and "
                      "max_rows positive (got {} and {})",
                      kRulerDivisions, options.pixels_per_row, options.max_rows);
  }
  auto pieces = dump_pieces(dump);
  HVMM_TRY(pieces);
  // The span follows the RAM drawn (a few MMIO pages must not double it).
  uint64_t content = 0;
  for (const Piece& piece : *pieces) {
    content += piece.kind == kMmio ? 0 : piece.end - piece.start;
  }
  uint64_t span = choose_row_span(content, options.max_rows);
  span = std::max<uint64_t>(span, uint64_t{options.pixels_per_row} * 4096);
  const IpaGrid grid = build_grid(*pieces, span, options.pixels_per_row);
  const PictureFacts facts = picture_facts(dump, *pieces, grid);
  const int width = kLeft + static_cast<int>(options.pixels_per_row) + kRight;

  std::string body;
  body.reserve(256 + 160 * dump.mappings_size());
  int y = write_header(body, dump, options, facts, grid, 22, width);
  y = write_ruler(body, grid, y);
  std::vector<int> row_y;
  y = write_rows(body, grid, y, width, row_y);
  write_device_marks(body, facts, grid, row_y);
  const int height = y + 10;

  std::string out;
  out.reserve(body.size() + 1024);
  auto it = std::back_inserter(out);
  fmt::format_to(it,
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
                 "viewBox=\"0 0 {0} {1}\" font-family=\"monospace\" font-size=\"{2}\" "
                 "data-row-span=\"{3:#x}\" data-pixel-bytes=\"{4:#x}\">\n"
                 "<title>stage-2 map of VM {5}</title>\n",
                 width, height, kFontSize, grid.row_span, grid.pixel_bytes,
                 xml_escape(options.vm_name));
  write_defs(out, facts);
  fmt::format_to(it, "<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n", width, height);
  out += body;
  out += "</svg>\n";
  return out;
}

}  // namespace hvmm::daemon::svg
