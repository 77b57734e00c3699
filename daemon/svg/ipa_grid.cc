// Cutting a dump into rows and pixel cells (ipa_grid.h).
#include "hvmm/daemon/svg/ipa_grid.h"

#include <algorithm>
#include <array>

namespace hvmm::daemon::svg {
namespace {

constexpr uint64_t kMinRowSpan = uint64_t{4} << 20;

// The picture's kind of one mapping, or an error naming it.
Result<Kind> mapping_kind(const hvmm::v1::Mapping& mapping) {
  if (mapping.memory_type() == hvmm::v1::MEMORY_TYPE_DEVICE_NGNRE ||
      mapping.memory_type() == hvmm::v1::MEMORY_TYPE_DEVICE_NGNRNE) {
    return kMmio;
  }
  const int backing = mapping.state().backing();
  if (backing < 0 || backing > 3) {
    return make_error(ErrorCode::kInvalidArgument, "mapping at {:#x}: unknown backing {}",
                      mapping.range().start(), backing);
  }
  return ram_kind(backing, mapping.largest_block_level() > 0, mapping.state().write_tracked(),
                  mapping.state().pinned());
}

// [start, start + size) as a piece, unless it is empty or wraps.
Result<Piece> range_piece(const hvmm::v1::IpaRange& range, Kind kind, const char* what) {
  const uint64_t start = range.start();
  const uint64_t size = range.size();
  if (size == 0 || start + size < start) {
    return make_error(ErrorCode::kInvalidArgument, "{} at {:#x}: empty or wrapping size {:#x}",
                      what, start, size);
  }
  return Piece{start, start + size, kind};
}

// Sort by start; merge touching or overlapping MMIO; refuse any other overlap.
Result<std::vector<Piece>> order_pieces(std::vector<Piece> pieces) {
  std::stable_sort(pieces.begin(), pieces.end(),
                   [](const Piece& a, const Piece& b) { return a.start < b.start; });
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (const Piece& piece : pieces) {
    if (!out.empty() && piece.start < out.back().end) {
      Piece& last = out.back();
      if (last.kind != kMmio || piece.kind != kMmio) {
        return make_error(ErrorCode::kInvalidArgument,
                          "[{:#x}, {:#x}) ({}) overlaps [{:#x}, {:#x}) ({})", piece.start,
                          piece.end, kind_token(piece.kind), last.start, last.end,
                          kind_token(last.kind));
      }
      last.end = std::max(last.end, piece.end);
      continue;
    }
    out.push_back(piece);
  }
  return out;
}

// GridBuilder turns pieces into cells, one partly covered pixel at a time and whole pixels
// in bulk.
class GridBuilder {
 public:
  GridBuilder(uint64_t row_span, unsigned pixels_per_row) {
    grid_.row_span = row_span;
    grid_.pixels_per_row = pixels_per_row;
    grid_.pixel_bytes = row_span / pixels_per_row;
  }

  // [start, end) is `kind`; calls come in IPA order and tile the space from 0.
  void add(uint64_t start, uint64_t end, Kind kind) {
    const uint64_t pixel = grid_.pixel_bytes;
    while (start < end) {
      const uint64_t index = start / pixel;
      const uint64_t pixel_end = (index + 1) * pixel;
      if (start % pixel != 0 || end < pixel_end) {
        const uint64_t to = std::min(end, pixel_end);
        add_partial(index, to - start, kind);
        start = to;
        continue;
      }
      flush_partial();
      const uint64_t whole_end = end / pixel;
      add_whole(index, whole_end, kind_bit(kind), kind_colour(kind));
      start = whole_end * pixel;
    }
  }

  IpaGrid finish() {
    flush_partial();
    grid_.end = grid_.rows.empty() ? 0 : grid_.rows.back().start + grid_.row_span;
    return std::move(grid_);
  }

 private:
  // Part of pixel `index` is `kind`.
  void add_partial(uint64_t index, uint64_t bytes, Kind kind) {
    if (partial_index_ != index) {
      flush_partial();
      partial_index_ = index;
    }
    partial_bytes_[kind] += bytes;
    partial_kinds_ |= kind_bit(kind);
  }

  // The pending pixel becomes a cell: pure if one kind covers all of it, mixed otherwise.
  void flush_partial() {
    if (partial_kinds_ == 0) {
      return;
    }
    uint64_t weighted[3] = {0, 0, 0};
    uint64_t total = 0;
    for (Kind kind = 0; kind < kKindCount; ++kind) {
      const uint64_t bytes = partial_bytes_[kind];
      if (bytes != 0) {
        const Rgb c = kind_colour(kind);
        weighted[0] += c.r * bytes;
        weighted[1] += c.g * bytes;
        weighted[2] += c.b * bytes;
        total += bytes;
      }
    }
    const Rgb blend{static_cast<uint8_t>(weighted[0] / total),
                    static_cast<uint8_t>(weighted[1] / total),
                    static_cast<uint8_t>(weighted[2] / total)};
    add_whole(partial_index_, partial_index_ + 1, partial_kinds_, blend);
    partial_bytes_.fill(0);
    partial_kinds_ = 0;
  }

  // Pixels [first, last) are `kinds`, split at row boundaries; whole rows of hole are skipped.
  void add_whole(uint64_t first, uint64_t last, KindMask kinds, Rgb colour) {
    const uint64_t per_row = grid_.pixels_per_row;
    while (first < last) {
      const uint64_t row = first / per_row;
      const uint64_t row_last = std::min(last, (row + 1) * per_row);
      const bool whole_row = first == row * per_row && row_last == (row + 1) * per_row;
      if (!(whole_row && kinds == kind_bit(kHole))) {
        append(row, first, row_last, kinds, colour);
      }
      first = row_last;
    }
  }

  // Extend the last cell when it is the same pure kind or both are mixed, else start a cell.
  void append(uint64_t row, uint64_t first, uint64_t last, KindMask kinds, Rgb colour) {
    const uint64_t pixel = grid_.pixel_bytes;
    const uint64_t row_start = row * grid_.row_span;
    if (grid_.rows.empty() || grid_.rows.back().start != row_start) {
      grid_.rows.push_back(Row{row_start, {}});
      mixed_weight_ = 0;
    }
    std::vector<Cell>& cells = grid_.rows.back().cells;
    const Cell candidate{first * pixel, last * pixel, kinds, colour};
    if (!cells.empty() && cells.back().end == candidate.start) {
      Cell& open = cells.back();
      if (open.pure() && candidate.pure() && open.kinds == kinds) {
        open.end = candidate.end;
        return;
      }
      if (!open.pure() && !candidate.pure()) {
        blend_into(open, candidate);
        return;
      }
    }
    cells.push_back(candidate);
    mixed_weight_ = candidate.end - candidate.start;
  }

  // Merge mixed `next` into mixed `open`, blending the colours by width.
  void blend_into(Cell& open, const Cell& next) {
    const uint64_t a = mixed_weight_;
    const uint64_t b = next.end - next.start;
    auto mix = [a, b](uint8_t x, uint8_t y) {
      return static_cast<uint8_t>((x * a + y * b) / (a + b));
    };
    open.colour = Rgb{mix(open.colour.r, next.colour.r), mix(open.colour.g, next.colour.g),
                      mix(open.colour.b, next.colour.b)};
    open.kinds |= next.kinds;
    open.end = next.end;
    mixed_weight_ = a + b;
  }

  IpaGrid grid_;
  uint64_t partial_index_ = ~uint64_t{0};
  std::array<uint64_t, kKindCount> partial_bytes_{};
  KindMask partial_kinds_ = 0;
  uint64_t mixed_weight_ = 0;  // bytes of the open cell, for blending
};

}  // namespace

Result<std::vector<Piece>> dump_pieces(const hvmm::v1::Stage2Dump& dump) {
  std::vector<Piece> pieces;
  pieces.reserve(static_cast<size_t>(dump.mappings_size() + dump.devices_size()));
  for (const hvmm::v1::Mapping& mapping : dump.mappings()) {
    auto kind = mapping_kind(mapping);
    HVMM_TRY(kind);
    auto piece = range_piece(mapping.range(), *kind, "mapping");
    HVMM_TRY(piece);
    pieces.push_back(*piece);
  }
  for (const hvmm::v1::DeviceRegion& device : dump.devices()) {
    auto piece = range_piece(device.range(), kMmio, "device region");
    HVMM_TRY(piece);
    pieces.push_back(*piece);
  }
  return order_pieces(std::move(pieces));
}

uint64_t choose_row_span(uint64_t bytes, unsigned max_rows) {
  uint64_t span = kMinRowSpan;
  while (span < (uint64_t{1} << 62) && bytes > span * max_rows) {
    span *= 2;
  }
  return span;
}

IpaGrid build_grid(std::span<const Piece> pieces, uint64_t row_span, unsigned pixels_per_row) {
  GridBuilder builder(row_span, pixels_per_row);
  uint64_t at = 0;
  for (const Piece& piece : pieces) {
    if (piece.start > at) {
      builder.add(at, piece.start, kHole);
    }
    builder.add(piece.start, piece.end, piece.kind);
    at = piece.end;
  }
  if (at % row_span != 0) {
    const uint64_t row_end = (at / row_span + 1) * row_span;
    builder.add(at, row_end < at ? ~uint64_t{0} : row_end, kHole);
  }
  return builder.finish();
}

}  // namespace hvmm::daemon::svg
