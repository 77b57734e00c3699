// End-to-end: `hvmm stage2 dump NAME --svg FILE` of a real guest-kernel VM that gave memory
// back through its balloon and through host reclaim. The picture is parsed back (tinyxml2)
// and checked against DumpStage2: ballooned where the dump says, reclaimed only where the
// dump says reclaimed (or resident again after a refault), the machine's MMIO marked.
#include <gtest/gtest.h>
#include <tinyxml2.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "cli.h"
#include "daemon_test.h"
#include "guest_vms.h"

namespace hvmm::e2e {
namespace {

using std::chrono::seconds;

constexpr uint64_t kVmMemory = 256 * kMiB;
constexpr uint64_t kBalloon = 96 * kMiB;

// One cell of the picture: [start, start + size) and its data-state.
struct PictureCell {
  uint64_t start;
  uint64_t size;
  std::string state;
};

struct Picture {
  std::vector<PictureCell> cells;
  std::vector<std::string> marks;  // data-name of each MMIO mark
  bool parsed = false;
};

uint64_t hex(const tinyxml2::XMLElement* e, const char* name) {
  const char* text = e->Attribute(name);
  return text ? std::strtoull(text, nullptr, 16) : 0;
}

void collect(const tinyxml2::XMLElement* e, Picture& picture) {
  for (auto* c = e->FirstChildElement(); c != nullptr; c = c->NextSiblingElement()) {
    const char* klass = c->Attribute("class");
    if (klass != nullptr && std::string(klass) == "mmio-mark") {
      picture.marks.emplace_back(c->Attribute("data-name"));
    } else if (std::string(c->Name()) == "rect" && c->Attribute("data-state") != nullptr) {
      picture.cells.push_back(
          {hex(c, "data-start"), hex(c, "data-size"), c->Attribute("data-state")});
    }
    collect(c, picture);
  }
}

Picture parse_picture(const std::string& path) {
  std::ifstream file(path);
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  tinyxml2::XMLDocument doc;
  Picture picture;
  if (doc.Parse(text.data(), text.size()) != tinyxml2::XML_SUCCESS ||
      doc.RootElement() == nullptr) {
    ADD_FAILURE() << path << " is not well-formed XML: " << doc.ErrorStr();
    return picture;
  }
  collect(doc.RootElement(), picture);
  picture.parsed = true;
  return picture;
}

// The mappings of `dump` that overlap [start, end), each with its backing.
std::vector<const v1::Mapping*> overlapping(const std::vector<v1::Mapping>& dump, uint64_t start,
                                            uint64_t end) {
  std::vector<const v1::Mapping*> out;
  for (const v1::Mapping& m : dump) {
    if (m.range().start() < end && start < m.range().start() + m.range().size()) {
      out.push_back(&m);
    }
  }
  return out;
}

class Stage2SvgE2e : public DaemonTest {};

// A 256 MiB guest ballooned by 96 MiB, then reclaimed for a few epochs: the CLI's picture
// holds the dump's ballooned bytes exactly, in ballooned ranges, and marks the MMIO windows.
TEST_F(Stage2SvgE2e, BalloonedGuestPictureMatchesTheDump) {
  v1::VmSpec spec = guest_spec(kVmMemory);
  spec.set_reclaim_policy("period=3600s,cold=2,budget=off");
  auto vm = start_guest_vm(api(), "pictured", spec);
  ASSERT_TRUE(vm.ok()) << vm.error().message;

  CliOptions text;
  text.json = false;
  auto balloon =
      run_cli(daemon().socket(), {"balloon", "set", "pictured", "96M", "--wait", "300s"}, text);
  ASSERT_TRUE(balloon.ok()) << balloon.error().message;
  ASSERT_EQ(balloon->status.code, 0) << balloon->output;
  auto reclaim = run_cli(daemon().socket(), {"reclaim", "pictured", "--epochs", "4"}, text);
  ASSERT_TRUE(reclaim.ok()) << reclaim.error().message;
  ASSERT_EQ(reclaim->status.code, 0) << reclaim->output;

  const std::string path = daemon().directory() + "/pictured.svg";
  auto dumped = run_cli(daemon().socket(), {"stage2", "dump", "pictured", "--svg", path}, text);
  ASSERT_TRUE(dumped.ok()) << dumped.error().message;
  ASSERT_EQ(dumped->status.code, 0) << dumped->output;
  EXPECT_EQ(dumped->output, "") << "no table with --svg";
  auto mappings = dump_stage2_all(api(), "pictured", 1000);
  ASSERT_TRUE(mappings.ok()) << mappings.error().message;
  const Picture picture = parse_picture(path);
  ASSERT_TRUE(picture.parsed);

  uint64_t ballooned_drawn = 0;
  uint64_t reclaimed_drawn = 0;
  for (const PictureCell& cell : picture.cells) {
    ASSERT_NE(cell.state, "mixed") << "at 256 MiB a pixel is one page: nothing is merged";
    const uint64_t end = cell.start + cell.size;
    const std::string backing = cell.state.substr(0, cell.state.find('.'));
    for (const v1::Mapping* m : overlapping(*mappings, cell.start, end)) {
      const v1::Backing b = m->state().backing();
      if (backing == "ballooned") {
        EXPECT_EQ(b, v1::BACKING_BALLOONED) << "cell " << cell.state << " at " << cell.start;
      } else if (backing == "reclaimed") {
        // A page the guest touched since the picture was taken is resident again.
        EXPECT_TRUE(b == v1::BACKING_RECLAIMED || b == v1::BACKING_RESIDENT)
            << "cell " << cell.state << " at " << cell.start;
      } else if (backing == "hole" || backing == "mmio") {
        ADD_FAILURE() << "a " << backing << " cell over guest RAM at " << cell.start;
      }
    }
    ballooned_drawn += backing == "ballooned" ? cell.size : 0;
    reclaimed_drawn += backing == "reclaimed" ? cell.size : 0;
  }
  const uint64_t ballooned = bytes_with_backing(*mappings, v1::BACKING_BALLOONED);
  EXPECT_GE(ballooned, kBalloon);
  EXPECT_EQ(ballooned_drawn, ballooned) << "the picture holds every ballooned page";
  EXPECT_GT(reclaimed_drawn, 0u) << "four reclaim epochs at cold=2 reclaimed nothing";
  std::printf("picture: %zu cells, %llu MiB ballooned, %llu KiB reclaimed\n", picture.cells.size(),
              static_cast<unsigned long long>(ballooned_drawn >> 20),
              static_cast<unsigned long long>(reclaimed_drawn >> 10));
  bool balloon_marked = false;
  for (const std::string& name : picture.marks) {
    balloon_marked |= name.find("balloon") != std::string::npos;
  }
  EXPECT_TRUE(balloon_marked) << "the balloon's virtio-mmio window is marked";
  EXPECT_GE(picture.marks.size(), 3u) << "IOAPIC, LAPIC and the virtio windows";
}

}  // namespace
}  // namespace hvmm::e2e
