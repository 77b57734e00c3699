// render_stage2_svg: a picture of a VM's guest-physical space from its stage-2 dump.
//
// The picture is one self-contained SVG: a title (VM, VMID, RAM, pages by state), a legend
// of every kind present, a ruler of offsets inside a row, then one row per row_span of IPA
// space with its start in hex, cells coloured by page state (blocks solid, 4 KiB page runs a
// lighter dotted shade, write-tracked hatched, pinned underlined, MMIO red, holes grey, runs
// narrower than a pixel merged into one blended "mixed" cell), runs of empty rows collapsed
// into one labelled gap, and a red marker on every device region. Every cell carries
// data-start, data-size and data-state (page_kind.h's token, or "mixed" with data-kinds),
// so tools and tests can read it back. The same dump and options give the same bytes.
#pragma once

#include <cstdint>
#include <string>

#include "hvmm/base/result.h"
#include "hvmm/v1/stage2.pb.h"

namespace hvmm::daemon::svg {

struct PictureOptions {
  // Named in the title.
  std::string vm_name;
  // Guest RAM for the title; 0: the dump's memory_bytes.
  uint64_t memory_bytes = 0;
  // Rows of the content at most (the span per row is chosen to fit); gaps and MMIO rows
  // come on top.
  unsigned max_rows = 64;
  // Pixels across one row.
  unsigned pixels_per_row = 1024;
};

// The SVG document of `dump`, or an error naming the mapping or region that made no sense
// (empty, wrapping, overlapping, an unknown backing).
Result<std::string> render_stage2_svg(const hvmm::v1::Stage2Dump& dump,
                                      const PictureOptions& options);

}  // namespace hvmm::daemon::svg
