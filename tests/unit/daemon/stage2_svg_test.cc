// The stage-2 picture (daemon/svg) against random dumps: the SVG is parsed back with tinyxml2
// and every cell's state is checked against a model of the dump at the IPAs it covers.
#include <gtest/gtest.h>
#include <tinyxml2.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "hvmm/daemon/svg/ipa_grid.h"
#include "hvmm/daemon/svg/stage2_svg.h"

namespace hvmm::daemon::svg {
namespace {

namespace v1 = hvmm::v1;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = kKiB * 1024;
constexpr uint64_t kGiB = kMiB * 1024;
constexpr uint64_t kHoleStart = 3 * kGiB;  // the x86 MMIO hole, as vmm/memory lays RAM out
constexpr uint64_t kHoleEnd = 4 * kGiB;
constexpr double kCharWidth = 0.6 * 11;  // monospace at the picture's font size

// One range of the model: what the dump says [start, end) is (holes are gaps).
struct ModelRun {
  uint64_t start;
  uint64_t end;
  std::string token;
};

// A random dump and the model it was made from.
struct RandomDump {
  v1::Stage2Dump dump;
  std::vector<ModelRun> model;
};

std::string token_of(int backing, bool block, bool wt, bool pinned) {
  static const char* kWords[] = {"resident", "ballooned", "reclaimed", "reported"};
  std::string token = std::string(kWords[backing]) + (block ? ".block" : ".page");
  return token + (wt ? ".wt" : "") + (pinned ? ".pinned" : "");
}

void add_mapping(RandomDump& out, uint64_t start, uint64_t size, int backing, bool block, bool wt,
                 bool pinned) {
  v1::Mapping* m = out.dump.add_mappings();
  m->mutable_range()->set_start(start);
  m->mutable_range()->set_size(size);
  m->set_host_offset(start);
  m->set_permissions(v1::PERMISSIONS_READ_WRITE);
  m->set_memory_type(v1::MEMORY_TYPE_NORMAL_WRITE_BACK);
  m->mutable_state()->set_backing(static_cast<v1::Backing>(backing));
  m->mutable_state()->set_write_tracked(wt);
  m->mutable_state()->set_pinned(pinned);
  m->set_largest_block_level(block ? 1 : 0);
  out.model.push_back({start, start + size, token_of(backing, block, wt, pinned)});
}

void add_device(RandomDump& out, uint64_t start, uint64_t size, const std::string& name) {
  v1::DeviceRegion* d = out.dump.add_devices();
  d->mutable_range()->set_start(start);
  d->mutable_range()->set_size(size);
  d->set_name(name);
  out.model.push_back({start, start + size, "mmio"});
}

// RAM [begin, end) as random runs: 4 KiB page runs and 2 MiB block runs of random states,
// with random holes; `mean_run` sets how fine the runs are.
void add_ram(RandomDump& out, std::mt19937_64& random, uint64_t begin, uint64_t end,
             uint64_t mean_run) {
  std::discrete_distribution<int> backing({60, 25, 10, 5});
  std::uniform_real_distribution<double> unit(0, 1);
  const uint64_t mean_pages = std::max<uint64_t>(1, mean_run / (4 * kKiB));
  std::uniform_int_distribution<uint64_t> pages(1, 2 * mean_pages);
  uint64_t at = begin;
  while (at < end) {
    const bool aligned = at % (2 * kMiB) == 0;
    const bool block = aligned && unit(random) < 0.5;
    uint64_t size =
        block ? std::max<uint64_t>(1, pages(random) / 512) * 2 * kMiB : pages(random) * 4 * kKiB;
    size = std::min(size, end - at);
    if (block && size % (2 * kMiB) != 0) {
      size -= size % (2 * kMiB);
      if (size == 0) {
        continue;
      }
    }
    if (unit(random) < 0.05) {
      at += size;  // a hole
      continue;
    }
    add_mapping(out, at, size, backing(random), block, unit(random) < 0.1, unit(random) < 0.05);
    at += size;
  }
}

// A guest of `memory` bytes laid out around the MMIO hole, with hvmm's MMIO regions.
RandomDump random_dump(uint64_t seed, uint64_t memory, uint64_t mean_run) {
  std::mt19937_64 random(seed);
  RandomDump out;
  out.dump.set_ipa_bits(40);
  out.dump.set_vmid(static_cast<uint32_t>(seed % 250 + 1));
  out.dump.set_memory_bytes(memory);
  const uint64_t low = std::min(memory, kHoleStart);
  add_ram(out, random, 0, low, mean_run);
  if (random() % 3 != 0) {
    add_device(out, 0xd0000000, 0x1000, "virtio-balloon@0xd0000000");
  }
  if (random() % 2 != 0) {
    add_device(out, 0xd0001000, 0x1000, "virtio-control@0xd0001000");
  }
  add_device(out, 0xfec00000, 0x1000, "IOAPIC");
  add_device(out, 0xfee00000, 0x1000, "LAPIC");
  add_device(out, 0xfffbc000, 0x4000, "KVM identity map and TSS");
  if (memory > low) {
    add_ram(out, random, kHoleEnd, kHoleEnd + memory - low, mean_run);
  }
  std::sort(out.model.begin(), out.model.end(),
            [](const ModelRun& a, const ModelRun& b) { return a.start < b.start; });
  return out;
}

// The tokens the model has in [start, end), "hole" for any gap.
std::set<std::string> model_tokens(const std::vector<ModelRun>& model, uint64_t start,
                                   uint64_t end) {
  std::set<std::string> tokens;
  auto it = std::upper_bound(model.begin(), model.end(), start,
                             [](uint64_t ipa, const ModelRun& run) { return ipa < run.end; });
  uint64_t at = start;
  for (; it != model.end() && it->start < end; ++it) {
    if (it->start > at) {
      tokens.insert("hole");
    }
    tokens.insert(it->token);
    at = std::max(at, it->end);
  }
  if (at < end) {
    tokens.insert("hole");
  }
  return tokens;
}

// Whether [start, end) holds two kinds or more (a hole counts as one); cheaper than the set.
bool model_mixed(const std::vector<ModelRun>& model, uint64_t start, uint64_t end) {
  auto it = std::upper_bound(model.begin(), model.end(), start,
                             [](uint64_t ipa, const ModelRun& run) { return ipa < run.end; });
  if (it == model.end() || it->start >= end) {
    return false;  // all hole
  }
  if (it->start > start) {
    return true;  // hole, then a run
  }
  const std::string& first = it->token;
  uint64_t at = it->end;
  for (++it; at < end; ++it) {
    if (it == model.end() || it->start > at || it->token != first) {
      return true;
    }
    at = it->end;
  }
  return false;
}

uint64_t hex_attr(const tinyxml2::XMLElement* e, const char* name) {
  const char* text = e->Attribute(name);
  EXPECT_NE(text, nullptr) << name;
  return text ? std::strtoull(text, nullptr, 16) : 0;
}

std::set<std::string> words(const char* text) {
  std::set<std::string> out;
  std::istringstream in(text ? text : "");
  for (std::string w; in >> w;) {
    out.insert(w);
  }
  return out;
}

// What the parsed picture holds.
struct Parsed {
  uint64_t row_span = 0;
  uint64_t pixel_bytes = 0;
  struct CellRect {
    uint64_t start, size, row_start;
    int x, y, width;
    std::string state;
    std::set<std::string> kinds;
  };
  std::vector<CellRect> cells;
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  struct Label {
    uint64_t ipa;
    int y;
    std::string text;
  };
  std::vector<Label> row_labels;
  std::vector<std::pair<int, std::string>> ruler;  // x, text
  std::set<std::string> legend;
  std::vector<std::pair<uint64_t, std::string>> marks;
  int pins = 0;
};

void collect(const tinyxml2::XMLElement* e, Parsed& p, uint64_t row_start) {
  for (const tinyxml2::XMLElement* c = e->FirstChildElement(); c; c = c->NextSiblingElement()) {
    const std::string name = c->Name();
    const char* cls = c->Attribute("class");
    const std::string klass = cls ? cls : "";
    if (klass == "row") {
      collect(c, p, hex_attr(c, "data-start"));
      continue;
    }
    if (klass == "gap") {
      p.gaps.emplace_back(hex_attr(c, "data-start"), hex_attr(c, "data-size"));
    } else if (klass == "row-label") {
      p.row_labels.push_back({hex_attr(c, "data-ipa"), c->IntAttribute("y"), c->GetText()});
    } else if (klass == "ruler-label") {
      p.ruler.emplace_back(c->IntAttribute("x"), c->GetText());
    } else if (klass == "legend-entry") {
      p.legend.insert(c->Attribute("data-kind"));
    } else if (klass == "mmio-mark") {
      p.marks.emplace_back(hex_attr(c, "data-start"), c->Attribute("data-name"));
    } else if (klass == "pin") {
      ++p.pins;
    } else if (name == "rect" && c->Attribute("data-state")) {
      Parsed::CellRect cell{hex_attr(c, "data-start"),
                            hex_attr(c, "data-size"),
                            row_start,
                            c->IntAttribute("x"),
                            c->IntAttribute("y"),
                            c->IntAttribute("width"),
                            c->Attribute("data-state"),
                            words(c->Attribute("data-kinds"))};
      p.cells.push_back(cell);
    }
    collect(c, p, row_start);
  }
}

// Parse `svg`; a document that is not well-formed fails the test.
Parsed parse(const std::string& svg) {
  tinyxml2::XMLDocument doc;
  EXPECT_EQ(doc.Parse(svg.data(), svg.size()), tinyxml2::XML_SUCCESS) << doc.ErrorStr();
  Parsed p;
  const tinyxml2::XMLElement* root = doc.RootElement();
  if (root == nullptr) {
    ADD_FAILURE() << "no root element";
    return p;
  }
  EXPECT_STREQ(root->Name(), "svg");
  EXPECT_STREQ(root->Attribute("xmlns"), "http://www.w3.org/2000/svg");
  p.row_span = hex_attr(root, "data-row-span");
  p.pixel_bytes = hex_attr(root, "data-pixel-bytes");
  collect(root, p, 0);
  return p;
}

// Every check of one picture against its model. Returns the number of mixed cells.
size_t check_picture(const RandomDump& in, const std::string& svg) {
  const Parsed p = parse(svg);
  EXPECT_GE(p.pixel_bytes, 4 * kKiB);
  EXPECT_EQ(p.row_span, p.pixel_bytes * 1024);
  // Cells and gaps tile [0, end) with no overlap, and the end is past everything in the dump.
  std::vector<std::pair<uint64_t, uint64_t>> tiles = p.gaps;
  for (const auto& cell : p.cells) {
    tiles.emplace_back(cell.start, cell.size);
  }
  std::sort(tiles.begin(), tiles.end());
  uint64_t at = 0;
  for (const auto& [start, size] : tiles) {
    EXPECT_EQ(start, at) << "a gap or an overlap before " << std::hex << start;
    at = start + size;
  }
  EXPECT_GE(at, in.model.back().end);
  EXPECT_EQ(at % p.row_span, 0u);
  for (const auto& [start, size] : p.gaps) {
    EXPECT_EQ(model_tokens(in.model, start, start + size), std::set<std::string>{"hole"});
  }
  // Each cell says what the dump holds there: pure cells one token, mixed ones every token
  // present and each of their pixels mixed (no pure pixel was merged away).
  size_t mixed = 0;
  std::set<std::string> drawn;
  for (const auto& cell : p.cells) {
    SCOPED_TRACE(::testing::Message() << "cell at " << std::hex << cell.start);
    EXPECT_EQ(cell.start % p.pixel_bytes, 0u);
    EXPECT_EQ(cell.size % p.pixel_bytes, 0u);
    EXPECT_EQ(static_cast<uint64_t>(cell.width), cell.size / p.pixel_bytes);
    EXPECT_EQ(static_cast<uint64_t>(cell.x), 112 + (cell.start - cell.row_start) / p.pixel_bytes);
    EXPECT_LE(cell.start + cell.size, cell.row_start + p.row_span);
    const auto expected = model_tokens(in.model, cell.start, cell.start + cell.size);
    if (cell.state == "mixed") {
      ++mixed;
      EXPECT_EQ(cell.kinds, expected);
      for (uint64_t px = cell.start; px < cell.start + cell.size; px += p.pixel_bytes) {
        EXPECT_TRUE(model_mixed(in.model, px, px + p.pixel_bytes))
            << "pixel " << std::hex << px << " is pure but drawn as mixed";
      }
    } else {
      EXPECT_EQ(expected, std::set<std::string>{cell.state});
      drawn.insert(cell.state);
    }
  }
  // The legend lists every state present and nothing else.
  std::set<std::string> present;
  for (const ModelRun& run : in.model) {
    present.insert(run.token);
  }
  if (drawn.count("hole") || !p.gaps.empty()) {
    present.insert("hole");
  }
  if (mixed > 0) {
    present.insert("mixed");
  }
  std::set<std::string> legend = p.legend;
  legend.erase("hole");
  present.erase("hole");
  EXPECT_EQ(legend, present);
  // Row labels: the hex of their row, increasing, one font height apart at least.
  for (size_t i = 0; i < p.row_labels.size(); ++i) {
    EXPECT_EQ(std::strtoull(p.row_labels[i].text.c_str(), nullptr, 16), p.row_labels[i].ipa);
    if (i > 0) {
      EXPECT_GT(p.row_labels[i].ipa, p.row_labels[i - 1].ipa);
      EXPECT_GE(p.row_labels[i].y - p.row_labels[i - 1].y, 11);
    }
  }
  // Ruler labels (centred) do not overlap.
  for (size_t i = 1; i < p.ruler.size(); ++i) {
    const double right = p.ruler[i - 1].first + kCharWidth * p.ruler[i - 1].second.size() / 2;
    const double left = p.ruler[i].first - kCharWidth * p.ruler[i].second.size() / 2;
    EXPECT_LT(right, left) << p.ruler[i - 1].second << " overlaps " << p.ruler[i].second;
  }
  // Every device region is marked.
  EXPECT_EQ(p.marks.size(), static_cast<size_t>(in.dump.devices_size()));
  for (int i = 0; i < in.dump.devices_size() && static_cast<size_t>(i) < p.marks.size(); ++i) {
    EXPECT_EQ(p.marks[static_cast<size_t>(i)].first, in.dump.devices(i).range().start());
    EXPECT_EQ(p.marks[static_cast<size_t>(i)].second, in.dump.devices(i).name());
  }
  return mixed;
}

std::string render(const v1::Stage2Dump& dump, const std::string& name = "web") {
  PictureOptions options;
  options.vm_name = name;
  auto svg = render_stage2_svg(dump, options);
  EXPECT_TRUE(svg.ok()) << (svg.ok() ? "" : svg.error().message);
  return svg.ok() ? *svg : std::string();
}

// Random guests from 256 MiB to 64 GiB, fine and coarse runs: every cell matches the dump.
TEST(Stage2Svg, RandomDumpsMatchTheModel) {
  std::mt19937_64 random(0x5f6);
  size_t mixed_total = 0;
  for (int i = 0; i < 16; ++i) {
    const unsigned log2 = 28 + static_cast<unsigned>(random() % 9);  // 256 MiB .. 64 GiB
    const uint64_t memory = (uint64_t{1} << log2) + (random() % 4) * 64 * kMiB;
    const uint64_t mean_run = uint64_t{4} * kKiB << (random() % 14);
    SCOPED_TRACE(::testing::Message() << "case " << i << ": " << (memory >> 20) << " MiB, runs ~"
                                      << (mean_run >> 10) << " KiB");
    const RandomDump in = random_dump(random(), memory, mean_run);
    mixed_total += check_picture(in, render(in.dump));
  }
  EXPECT_GT(mixed_total, 0u) << "no case exercised the sub-pixel merging";
}

// At 256 MiB a pixel is one 4 KiB page: nothing is merged, every run is its own cell.
TEST(Stage2Svg, SmallGuestNeedsNoMerging) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    const RandomDump in = random_dump(seed, 256 * kMiB, 16 * kKiB);
    const Parsed p = parse(render(in.dump));
    EXPECT_EQ(p.pixel_bytes, 4 * kKiB);
    EXPECT_EQ(check_picture(in, render(in.dump)), 0u);
  }
}

// A 64 GiB guest with 10^5 mappings renders well under a second into a modest file.
TEST(Stage2Svg, LargeGuestIsFastAndSmall) {
  RandomDump in = random_dump(99, 64 * kGiB, 640 * kKiB);
  ASSERT_GE(in.dump.mappings_size(), 90000);
  const auto start = std::chrono::steady_clock::now();
  const std::string svg = render(in.dump);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("64 GiB, %d mappings: %.3f s, %zu bytes\n", in.dump.mappings_size(), seconds,
              svg.size());
  EXPECT_LT(seconds, 0.5);
  EXPECT_LT(svg.size(), size_t{12} << 20);
  EXPECT_GT(check_picture(in, svg), 0u);
}

// The same dump gives the same bytes.
TEST(Stage2Svg, Deterministic) {
  const RandomDump in = random_dump(7, 2 * kGiB, 64 * kKiB);
  EXPECT_EQ(render(in.dump), render(in.dump));
}

// Write-tracked and pinned stay visible over the backing colour (a hatch, an underline).
TEST(Stage2Svg, FlagsStayVisible) {
  RandomDump in;
  in.dump.set_memory_bytes(256 * kMiB);
  add_mapping(in, 0, 2 * kMiB, 0, true, false, false);
  add_mapping(in, 2 * kMiB, 2 * kMiB, 1, true, true, false);
  add_mapping(in, 4 * kMiB, 64 * kKiB, 2, false, false, true);
  const std::string svg = render(in.dump);
  const Parsed p = parse(svg);
  EXPECT_EQ(p.pins, 1);
  EXPECT_NE(svg.find("<pattern id=\"p-ballooned-block-wt\""), std::string::npos);
  EXPECT_NE(svg.find("fill=\"url(#p-ballooned-block-wt)\""), std::string::npos);
  EXPECT_NE(svg.find("<pattern id=\"p-reclaimed-page-pinned\""), std::string::npos);
  check_picture(in, svg);
}

// The names the VM and devices bring are escaped; the document stays well-formed.
TEST(Stage2Svg, NamesAreEscaped) {
  RandomDump in;
  add_mapping(in, 0, 4 * kMiB, 0, true, false, false);
  add_device(in, 0xd0000000, 0x1000, "dev<&\">\x01");
  const std::string svg = render(in.dump, "a<b&c");
  EXPECT_EQ(svg.find("a<b"), std::string::npos);
  const Parsed p = parse(svg);
  ASSERT_EQ(p.marks.size(), 1u);
  EXPECT_EQ(p.marks[0].second, "dev<&\">?");  // XML 1.0 has no control characters
}

// A dump that makes no sense is refused with the range named.
TEST(Stage2Svg, BadDumpsAreRefused) {
  RandomDump overlap;
  add_mapping(overlap, 0, 8 * kMiB, 0, true, false, false);
  add_mapping(overlap, 4 * kMiB, 8 * kMiB, 1, true, false, false);
  auto svg = render_stage2_svg(overlap.dump, PictureOptions{});
  ASSERT_FALSE(svg.ok());
  EXPECT_NE(svg.error().message.find("[0x400000, 0xc00000)"), std::string::npos)
      << svg.error().message;

  RandomDump backing;
  add_mapping(backing, 0, 4 * kMiB, 0, true, false, false);
  backing.dump.mutable_mappings(0)->mutable_state()->set_backing(static_cast<v1::Backing>(9));
  svg = render_stage2_svg(backing.dump, PictureOptions{});
  ASSERT_FALSE(svg.ok());
  EXPECT_NE(svg.error().message.find("unknown backing 9"), std::string::npos);

  RandomDump wrap;
  add_mapping(wrap, ~uint64_t{0} - 4095, 8192, 0, false, false, false);
  EXPECT_FALSE(render_stage2_svg(wrap.dump, PictureOptions{}).ok());
}

// An empty dump is a picture with a title and nothing else.
TEST(Stage2Svg, EmptyDump) {
  v1::Stage2Dump dump;
  const Parsed p = parse(render(dump));
  EXPECT_TRUE(p.cells.empty());
}

// The row span keeps the content within 64 rows from 256 MiB to 64 GiB.
TEST(Stage2Svg, RowSpanPerSize) {
  EXPECT_EQ(choose_row_span(256 * kMiB, 64), 4 * kMiB);
  EXPECT_EQ(choose_row_span(257 * kMiB, 64), 8 * kMiB);
  EXPECT_EQ(choose_row_span(64 * kGiB, 64), 1 * kGiB);
  EXPECT_EQ(choose_row_span(0, 64), 4 * kMiB);
}

}  // namespace
}  // namespace hvmm::daemon::svg
