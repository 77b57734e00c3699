// The picture's patterns, title and legend (picture_parts.h).
#include <fmt/format.h>

#include <iterator>

#include "hvmm/daemon/args/human.h"
#include "hvmm/daemon/svg/picture_parts.h"

namespace hvmm::daemon::svg {
namespace {

constexpr uint64_t kPage = 4096;

// A pure kind needs a pattern when it has a texture: 4 KiB pages are dotted, write-tracked
// pages hatched.
bool has_pattern(Kind kind) {
  return is_ram(kind) && (!kind_block(kind) || kind_write_tracked(kind));
}

std::string pattern_id(Kind kind) {
  std::string id = "p-" + kind_token(kind);
  for (char& c : id) {
    c = c == '.' ? '-' : c;
  }
  return id;
}

// "resident 40960 (160 MiB)".
std::string page_figure(const char* word, uint64_t bytes) {
  return fmt::format("{} {} ({})", word, bytes / kPage, args::human_size(bytes));
}

// Title: who, then pages by state, then the scale.
int write_title(std::string& out, const hvmm::v1::Stage2Dump& dump, const PictureOptions& options,
                const PictureFacts& facts, const IpaGrid& grid, int y) {
  const uint64_t ram = options.memory_bytes != 0 ? options.memory_bytes : dump.memory_bytes();
  auto it = std::back_inserter(out);
  fmt::format_to(it,
                 "<text class=\"title\" x=\"12\" y=\"{}\" font-size=\"15\" font-weight=\"bold\">"
                 "stage-2 map of VM {}: VMID {}, RAM {}, {}-bit IPA space</text>\n",
                 y, xml_escape(options.vm_name.empty() ? "?" : options.vm_name), dump.vmid(),
                 ram != 0 ? args::human_size(ram) : "unknown", dump.ipa_bits());
  std::array<uint64_t, 4> backing{};
  uint64_t tracked = 0;
  uint64_t pinned = 0;
  for (Kind kind = 0; kind < kRamKinds; ++kind) {
    backing[static_cast<size_t>(kind_backing(kind))] += facts.bytes[kind];
    tracked += kind_write_tracked(kind) ? facts.bytes[kind] : 0;
    pinned += kind_pinned(kind) ? facts.bytes[kind] : 0;
  }
  std::string pages = "4 KiB pages:";
  for (int b = 0; b < 4; ++b) {
    pages += fmt::format(" {}{}", b == 0 ? "" : "· ",
                         page_figure(backing_word(b), backing[static_cast<size_t>(b)]));
  }
  fmt::format_to(it, "<text class=\"pages\" x=\"12\" y=\"{}\">{}</text>\n", y + 18, pages);
  fmt::format_to(it, "<text class=\"pages\" x=\"12\" y=\"{}\">of them {} · {}</text>\n", y + 34,
                 page_figure("write-tracked", tracked), page_figure("pinned", pinned));
  fmt::format_to(it,
                 "<text class=\"scale\" x=\"12\" y=\"{}\">one row = {}, one pixel = {}; a cell "
                 "narrower than a pixel's worth is merged into a blended \"mixed\" cell</text>\n",
                 y + 50, args::human_size(grid.row_span), args::human_size(grid.pixel_bytes));
  return y + 68;
}

// One legend swatch at (x, y) for a pure kind, with the pinned mark where it applies.
void write_swatch(std::string& out, Kind kind, int x, int y) {
  auto it = std::back_inserter(out);
  fmt::format_to(it, "<rect x=\"{}\" y=\"{}\" width=\"22\" height=\"{}\" fill=\"{}\"/>", x, y,
                 kRowHeight, kind_fill(kind));
  if (is_ram(kind) && kind_pinned(kind)) {
    fmt::format_to(it, "<rect x=\"{}\" y=\"{}\" width=\"22\" height=\"3\" fill=\"#1a1a1a\"/>", x,
                   y + kRowHeight - 3);
  }
}

// One entry in column `slot % kLegendColumns`.
struct LegendEntry {
  std::string kind_attr;  // data-kind
  std::string text;
  Kind swatch;  // kKindCount: the mixed grey
};

std::vector<LegendEntry> legend_entries(const PictureFacts& facts) {
  std::vector<LegendEntry> entries;
  for (Kind kind = 0; kind < kKindCount; ++kind) {
    if (facts.bytes[kind] != 0) {
      entries.push_back(
          {kind_token(kind),
           fmt::format("{}: {}", kind_words(kind), args::human_size(facts.bytes[kind])), kind});
    }
  }
  if (facts.any_hole_cell && facts.bytes[kHole] == 0) {
    entries.push_back({"hole", kind_words(kHole), kHole});
  }
  if (facts.any_mixed) {
    entries.push_back({"mixed", "mixed: several kinds inside one pixel (blended)", kKindCount});
  }
  return entries;
}

}  // namespace

std::string kind_fill(Kind kind) {
  return has_pattern(kind) ? "url(#" + pattern_id(kind) + ")" : colour_text(kind_colour(kind));
}

void write_defs(std::string& out, const PictureFacts& facts) {
  auto it = std::back_inserter(out);
  out += "<defs>\n";
  for (Kind kind = 0; kind < kRamKinds; ++kind) {
    if (facts.bytes[kind] == 0 || !has_pattern(kind)) {
      continue;
    }
    fmt::format_to(it,
                   "<pattern id=\"{}\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\">"
                   "<rect width=\"4\" height=\"4\" fill=\"{}\"/>",
                   pattern_id(kind), colour_text(kind_colour(kind)));
    if (!kind_block(kind)) {
      out +=
          "<rect x=\"1\" y=\"1\" width=\"1\" height=\"1\" fill=\"#ffffff\" fill-opacity=\"0.8\"/>";
    }
    if (kind_write_tracked(kind)) {
      out +=
          "<path d=\"M0,4L4,0M-1,1L1,-1M3,5L5,3\" stroke=\"#1a1a1a\" stroke-width=\"0.9\" "
          "stroke-opacity=\"0.7\"/>";
    }
    out += "</pattern>\n";
  }
  out += "</defs>\n";
}

int write_header(std::string& out, const hvmm::v1::Stage2Dump& dump, const PictureOptions& options,
                 const PictureFacts& facts, const IpaGrid& grid, int y, int width) {
  y = write_title(out, dump, options, facts, grid, y);
  auto it = std::back_inserter(out);
  const auto entries = legend_entries(facts);
  const int column_width = (width - 24) / kLegendColumns;
  out += "<g class=\"legend\">\n";
  for (size_t i = 0; i < entries.size(); ++i) {
    const int x = 12 + static_cast<int>(i % kLegendColumns) * column_width;
    const int row_y = y + static_cast<int>(i / kLegendColumns) * kLegendPitch;
    fmt::format_to(it, "<g class=\"legend-entry\" data-kind=\"{}\">", entries[i].kind_attr);
    if (entries[i].swatch == kKindCount) {
      fmt::format_to(it, "<rect x=\"{}\" y=\"{}\" width=\"22\" height=\"{}\" fill=\"#9a9a9a\"/>", x,
                     row_y, kRowHeight);
    } else {
      write_swatch(out, entries[i].swatch, x, row_y);
    }
    fmt::format_to(it, "<text x=\"{}\" y=\"{}\">{}</text></g>\n", x + 28, row_y + 10,
                   xml_escape(entries[i].text));
  }
  y += static_cast<int>((entries.size() + kLegendColumns - 1) / kLegendColumns) * kLegendPitch;
  for (size_t i = 0; i < facts.devices.size() && i < kMaxListedDevices; ++i) {
    const DeviceMark& device = facts.devices[i];
    fmt::format_to(it,
                   "<text class=\"legend-device\" x=\"12\" y=\"{}\" fill=\"#d62728\">MMIO "
                   "[{:#x}, {:#x}) {}</text>\n",
                   y + 10, device.start, device.end, xml_escape(device.name));
    y += kLegendPitch;
  }
  if (facts.devices.size() > kMaxListedDevices) {
    fmt::format_to(
        it, "<text class=\"legend-device\" x=\"12\" y=\"{}\">and {} more MMIO regions</text>\n",
        y + 10, facts.devices.size() - kMaxListedDevices);
    y += kLegendPitch;
  }
  out += "</g>\n";
  return y + 8;
}

}  // namespace hvmm::daemon::svg
