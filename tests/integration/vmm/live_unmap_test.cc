// Integration tests of the stage-2 map driving KVM live. A layout change: while a guest runs,
// the VMM unmaps a RAM page from the map; the region's memslot is split at once (vCPUs
// fenced), so the guest's next read of that page is an unbacked-IPA fault answered with
// all-ones and logged. A page-state change: the VMM balloons a page the guest is reading,
// with no fence and no memslot change; the punched hole reaches the guest through KVM's MMU
// notifier.
#include <gtest/gtest.h>

#include <sstream>
#include <thread>

#include "hvmm/vmm/boot/input_file.h"
#include "hvmm/vmm/host/log_file.h"
#include "hvmm/vmm/machine/machine.h"
#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

using testing::guest;
using testing::slurp;
using testing::TempPath;

// Wait until `path` contains `text`, up to `timeout`.
bool wait_for_file_text(const std::string& path, const std::string& text,
                        std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (slurp(path).find(text) != std::string::npos) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

// Boot `guest_name` with 16 MiB, its console in `console` and its faults in `faults`.
Result<std::unique_ptr<Machine>> boot(const char* guest_name, const TempPath& console,
                                      const TempPath& faults) {
  MachineConfig config;
  config.memory_size = 16 << 20;
  auto kernel = read_file(guest(guest_name), "--kernel", config.memory_size);
  HVMM_TRY(kernel);
  config.kernel = std::move(*kernel);
  auto console_log = open_log_file(console.path, "--console-log", LogOpenMode::kTruncate);
  HVMM_TRY(console_log);
  config.console_log = std::move(*console_log);
  auto fault_log = open_log_file(faults.path, "--fault-log", LogOpenMode::kAppend);
  HVMM_TRY(fault_log);
  config.fault_log = std::move(*fault_log);
  config.console_input = false;
  return Machine::create(std::move(config));
}

// Ballooning the page the guest polls releases it while the guest runs: no layout fence, the
// one memslot stays, and the guest's next read, once the punch invalidated KVM's translation,
// is a userfaultfd fault on a ballooned page: zero filled, and the page is resident again.
TEST(LivePageState, GuestSeesBalloonedPageReleased) {
  HVMM_SKIP_WITHOUT_KVM();
  TempPath console("console");
  TempPath faults("faults");
  auto machine = boot("release_watch", console, faults);
  ASSERT_TRUE(machine.ok()) << machine.error().message;
  GuestPhysical& physical = (*machine)->physical();
  int fenced = 0;
  physical.set_layout_fence([&] { ++fenced; }, [] {});
  int status = -1;
  std::thread runner([&] { status = (*machine)->run(); });
  bool ready = wait_for_file_text(console.path, "ready\n", std::chrono::seconds(30));
  EXPECT_TRUE(ready);
  auto ballooned =
      physical.set_backing(IpaRange{Ipa(0x200000), kPageSize}, stage2::Backing::kBallooned,
                           stage2::ChangeReason::kBalloon);
  EXPECT_TRUE(ballooned.ok()) << ballooned.error().message;
  bool released = wait_for_file_text(console.path, "released\n", std::chrono::seconds(30));
  if (!released) {
    (*machine)->request_stop(1, "the test gave up waiting for the guest");
  }
  runner.join();
  EXPECT_TRUE(released);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(slurp(console.path), "ready\nreleased\n");
  EXPECT_EQ(fenced, 0);
  ASSERT_EQ(physical.memslots()->slots().size(), 1u);
  EXPECT_EQ(physical.memslots()->slots()[0].range, (IpaRange{Ipa(0), 16 << 20}));
  EXPECT_EQ(physical.page_counts()[stage2::Backing::kBallooned], 0u);
  EXPECT_EQ(physical.page_counts(), physical.count_pages_by_walk());
  EXPECT_GE((*machine)->fault_counts().faults[static_cast<size_t>(FaultKind::kBallooned)]
                                             [static_cast<size_t>(FaultResolution::kZeroFill)],
            1u);
  const std::string log = slurp(faults.path);
  bool ballooned_fault = false;
  std::stringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    ballooned_fault |=
        line.find("\"ipa\":\"0x200000\"") != std::string::npos &&
        line.find("\"kind\":\"ballooned\",\"resolution\":\"zero-fill\"") != std::string::npos;
  }
  EXPECT_TRUE(ballooned_fault) << log;
}

// Unmapping the page the guest polls makes its reads return all-ones; the guest sees it,
// exits 0, and the fault log names that IPA as unbacked.
TEST(LiveUnmap, GuestSeesUnmappedPageAsUnbacked) {
  HVMM_SKIP_WITHOUT_KVM();
  TempPath console("console");
  TempPath faults("faults");
  auto machine = boot("unmap_watch", console, faults);
  ASSERT_TRUE(machine.ok()) << machine.error().message;
  int status = -1;
  std::thread runner([&] { status = (*machine)->run(); });
  bool ready = wait_for_file_text(console.path, "ready\n", std::chrono::seconds(30));
  EXPECT_TRUE(ready);
  auto unmapped = (*machine)->physical().unmap_ram(IpaRange{Ipa(0x200000), kPageSize});
  EXPECT_TRUE(unmapped.ok()) << unmapped.error().message;
  bool gone = wait_for_file_text(console.path, "gone\n", std::chrono::seconds(30));
  if (!gone) {
    (*machine)->request_stop(1, "the test gave up waiting for the guest");
  }
  runner.join();
  EXPECT_TRUE(gone);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(slurp(console.path), "ready\ngone\n");
  std::string log = slurp(faults.path);
  EXPECT_NE(log.find("\"ipa\":\"0x200000\",\"access\":\"read\",\"size\":4,\"kind\":\"unbacked\""),
            std::string::npos)
      << log;
  const auto& slots = (*machine)->physical().memslots()->slots();
  ASSERT_EQ(slots.size(), 2u);
  EXPECT_EQ(slots[0].range, (IpaRange{Ipa(0), 0x200000}));
  EXPECT_EQ(slots[1].range.start, Ipa(0x201000));
}

}  // namespace
}  // namespace hvmm::vmm
