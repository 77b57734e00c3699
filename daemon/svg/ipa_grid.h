// IpaGrid: a stage-2 dump cut into rows of a fixed IPA span and cells of whole pixels.
//
// Each row spans row_span bytes drawn across pixels_per_row pixels, so a pixel stands for
// row_span / pixels_per_row bytes (at least 4 KiB). A cell is a run of pixels of one kind
// (pure), or of pixels each holding several kinds (mixed: runs narrower than a pixel, drawn
// in the byte-weighted blend of their colours). Cells never cross a row; the cells of a row
// tile it. Rows with nothing but hole are left out (the picture draws them as one gap).
// Building costs O(pieces + cells), never one step per 4 KiB page.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "hvmm/base/result.h"
#include "hvmm/daemon/svg/page_kind.h"
#include "hvmm/v1/stage2.pb.h"

namespace hvmm::daemon::svg {

// Piece is one range [start, end) of one kind; holes are the gaps between pieces.
struct Piece {
  uint64_t start;
  uint64_t end;
  Kind kind;
};

// The mappings and device regions of `dump` as pieces in IPA order (touching device regions
// merged). Refuses empty or wrapping ranges, unknown backings and overlaps, naming them.
Result<std::vector<Piece>> dump_pieces(const hvmm::v1::Stage2Dump& dump);

struct Cell {
  uint64_t start;
  uint64_t end;
  KindMask kinds;  // one bit: a pure cell
  Rgb colour;      // the kind's colour, or the blend of a mixed cell

  bool pure() const { return (kinds & (kinds - 1)) == 0; }
  Kind kind() const { return static_cast<Kind>(__builtin_ctzll(kinds)); }
};

struct Row {
  uint64_t start;
  std::vector<Cell> cells;
};

struct IpaGrid {
  uint64_t row_span = 0;
  unsigned pixels_per_row = 0;
  uint64_t pixel_bytes = 0;
  std::vector<Row> rows;  // in IPA order, only rows that hold something but hole
  uint64_t end = 0;       // the end of the last row
};

// The row span for `bytes` of content: a power of two of at least 4 MiB, so that the content
// fills at most `max_rows` rows (256 MiB: 4 MiB rows; 64 GiB: 1 GiB rows, with 64).
uint64_t choose_row_span(uint64_t bytes, unsigned max_rows);

// Cut `pieces` (dump_pieces order) into the grid. `row_span` must be a multiple of
// `pixels_per_row`.
IpaGrid build_grid(std::span<const Piece> pieces, uint64_t row_span, unsigned pixels_per_row);

}  // namespace hvmm::daemon::svg
