// Tests of GuestPhysical's page-state changes on a real memfd: what each change does to the
// map, the memfd's allocated pages, the page counts and the notifier events, and what is
// refused with nothing changed.
#include "hvmm/vmm/memory/guest_physical.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>


namespace hvmm::vmm {
namespace {

using stage2::Backing;
using stage2::Change;
using stage2::ChangeReason;

constexpr uint64_t kRam = 8 << 20;
constexpr uint64_t kPages = kRam / kPageSize;

// Records every invalidation as "start|end RANGE REASON", and refuses non-blockable starts
// when `refuse` is set (as a device busy with a cached ring mapping would).
class EventRecorder final : public stage2::IntervalOps {
 public:
  bool invalidate_range_start(const Change& change) override {
    events.push_back(fmt::format("start {} {}", change.range, change_reason_name(change.reason)));
    return !refuse;
  }
  void invalidate_range_end(const Change& change) override {
    events.push_back(fmt::format("end {} {}", change.range, change_reason_name(change.reason)));
  }
  std::vector<std::string> take() { return std::exchange(events, {}); }
  std::vector<std::string> events;
  bool refuse = false;
};

// A GuestPhysical of kRam whose every invalidation is recorded.
struct GuestPhysicalTest : ::testing::Test {
  void SetUp() override {
    auto created = GuestPhysical::create(kRam, "guest-physical-test", 1);
    ASSERT_TRUE(created.ok()) << created.error().message;
    physical = std::move(*created);
    auto sub = physical->notifiers().subscribe(IpaRange{Ipa(0), kRam}, &recorder);
    ASSERT_TRUE(sub.ok());
    subscription = std::move(*sub);
  }
  // Write `byte` over [ipa, ipa + size) through the translator.
  void fill(Ipa ipa, uint64_t size, uint8_t byte) {
    std::vector<uint8_t> data(size, byte);
    ASSERT_TRUE(physical->write(ipa, data).ok());
  }
  std::vector<HostRange> extents() { return *physical->memory().allocated_extents(); }
  Backing backing_at(Ipa ipa) { return physical->map().translate(ipa)->state.backing; }

  EventRecorder recorder;
  std::unique_ptr<GuestPhysical> physical;
  stage2::IntervalSubscription subscription;
};

// "start R reason" / "end R reason", the pair one change produces.
std::vector<std::string> pair_of(IpaRange range, const char* reason) {
  return {fmt::format("start {} {}", range, reason), fmt::format("end {} {}", range, reason)};
}

// Inflating touched pages punches them out of the memfd in one change: the map says
// ballooned, VMM accesses are refused, the counts move, and neighbours keep their data.
TEST_F(GuestPhysicalTest, InflateReleasesTouchedPages) {
  fill(Ipa(0x10000), 4 * kPageSize, 0xaa);
  const IpaRange run{Ipa(0x11000), 2 * kPageSize};
  auto changed = physical->set_backing(run, Backing::kBallooned, ChangeReason::kBalloon);
  ASSERT_TRUE(changed.ok()) << changed.error().message;
  EXPECT_EQ((*changed)[Backing::kResident], 2u);
  EXPECT_EQ(changed->total(), 2u);
  EXPECT_EQ(recorder.take(), pair_of(run, "balloon"));
  EXPECT_EQ(extents(), (std::vector<HostRange>{{HostOffset(0x10000), kPageSize},
                                               {HostOffset(0x13000), kPageSize}}));
  EXPECT_EQ(backing_at(Ipa(0x11000)), Backing::kBallooned);
  EXPECT_FALSE(physical->is_ram(Ipa(0x12000)));
  std::vector<uint8_t> out(8);
  auto read = physical->read(Ipa(0x11000), out);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.error().message.find("ballooned"), std::string::npos) << read.error().message;
  EXPECT_EQ(physical->page_counts()[Backing::kBallooned], 2u);
  EXPECT_EQ(physical->page_counts()[Backing::kResident], kPages - 2);
  EXPECT_EQ(physical->page_counts(), physical->count_pages_by_walk());
  EXPECT_EQ(physical->realization_stats().punches, 1u);
}

// Deflate fills nothing: the pages are resident holes that read as zero, and only the read
// (a touch) allocates them again.
TEST_F(GuestPhysicalTest, DeflateLeavesHolesThatReadZero) {
  const IpaRange run{Ipa(0x20000), 3 * kPageSize};
  fill(run.start, run.size, 0x55);
  ASSERT_TRUE(physical->set_backing(run, Backing::kBallooned, ChangeReason::kBalloon).ok());
  auto deflated = physical->set_backing(run, Backing::kResident, ChangeReason::kBalloon);
  ASSERT_TRUE(deflated.ok());
  EXPECT_EQ((*deflated)[Backing::kBallooned], 3u);
  EXPECT_TRUE(extents().empty());
  std::vector<uint8_t> out(run.size, 0xff);
  ASSERT_TRUE(physical->read(run.start, out).ok());
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0; }));
  EXPECT_EQ(extents(), (std::vector<HostRange>{{HostOffset(0x20000), run.size}}));
  EXPECT_EQ(physical->realization_stats().punches, 1u);  // deflate punched nothing
}

// A change that would change nothing (inflating ballooned pages) makes no notifier event and
// counts nothing.
TEST_F(GuestPhysicalTest, NoOpChangeIsSkipped) {
  const IpaRange run{Ipa(0x30000), kPageSize};
  ASSERT_TRUE(physical->set_backing(run, Backing::kBallooned, ChangeReason::kBalloon).ok());
  recorder.take();
  auto again = physical->set_backing(run, Backing::kBallooned, ChangeReason::kBalloon);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->total(), 0u);
  EXPECT_TRUE(recorder.take().empty());
}

// A reported page is released; make_resident brings it back and calls the fill only for the
// pages that were absent, before anyone else can touch them.
TEST_F(GuestPhysicalTest, MakeResidentFillsOnlyAbsentPages) {
  fill(Ipa(0x40000), 4 * kPageSize, 0x33);
  const IpaRange reported{Ipa(0x41000), 2 * kPageSize};
  ASSERT_TRUE(
      physical->set_backing(reported, Backing::kReported, ChangeReason::kFreePageReport).ok());
  std::vector<std::pair<IpaRange, HostOffset>> fills;
  auto resident =
      physical->make_resident(IpaRange{Ipa(0x40000), 4 * kPageSize}, ChangeReason::kFault,
                              [&](IpaRange run, HostOffset output) {
                                fills.emplace_back(run, output);
                                uint8_t* host = *physical->memory().host_pointer(output, run.size);
                                std::fill(host, host + run.size, uint8_t{0x44});
                                return Ok();
                              });
  ASSERT_TRUE(resident.ok()) << resident.error().message;
  EXPECT_EQ((*resident)[Backing::kReported], 2u);
  ASSERT_EQ(fills.size(), 1u);
  EXPECT_EQ(fills[0].first, reported);
  EXPECT_EQ(fills[0].second, HostOffset(0x41000));
  std::vector<uint8_t> out(4);
  ASSERT_TRUE(physical->read(Ipa(0x40ffc), out).ok());
  EXPECT_EQ(out, (std::vector<uint8_t>{0x33, 0x33, 0x33, 0x33}));
  ASSERT_TRUE(physical->read(Ipa(0x41000), out).ok());
  EXPECT_EQ(out, (std::vector<uint8_t>{0x44, 0x44, 0x44, 0x44}));
  EXPECT_EQ(recorder.take().back(), fmt::format("end {} fault", IpaRange{Ipa(0x40000), 0x4000}));
}

// Reclaimed pages keep their contents in the pool: deflating them is refused with nothing
// changed, while make_resident (whose caller restores them) accepts them.
TEST_F(GuestPhysicalTest, ReclaimedPagesComeBackOnlyThroughMakeResident) {
  const IpaRange run{Ipa(0x50000), kPageSize};
  ASSERT_TRUE(physical->set_backing(run, Backing::kReclaimed, ChangeReason::kReclaim).ok());
  recorder.take();
  auto deflate = physical->set_backing(run, Backing::kResident, ChangeReason::kBalloon);
  ASSERT_FALSE(deflate.ok());
  EXPECT_EQ(deflate.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(deflate.error().message.find("reclaimed"), std::string::npos);
  EXPECT_EQ(backing_at(run.start), Backing::kReclaimed);
  EXPECT_TRUE(recorder.take().empty());
  auto fault = physical->make_resident(run);
  ASSERT_TRUE(fault.ok());
  EXPECT_EQ((*fault)[Backing::kReclaimed], 1u);
  EXPECT_EQ(backing_at(run.start), Backing::kResident);
}

// A subscriber refusing a non-blockable report vetoes it: the error says it was refused and
// can be retried, the page stays resident and allocated with its data, the counts are
// unchanged and the sequence is even; the same report when blockable goes through.
TEST_F(GuestPhysicalTest, RefusedChangeCommitsAndPunchesNothing) {
  const IpaRange run{Ipa(0x60000), kPageSize};
  fill(run.start, run.size, 0x77);
  const PageCounts before = physical->page_counts();
  recorder.refuse = true;
  auto refused =
      physical->set_backing(run, Backing::kReported, ChangeReason::kFreePageReport, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(refused.error().message.find("refused"), std::string::npos) << refused.error().message;
  EXPECT_NE(refused.error().message.find("retry"), std::string::npos);
  EXPECT_EQ(backing_at(run.start), Backing::kResident);
  EXPECT_EQ(extents(), (std::vector<HostRange>{{HostOffset(0x60000), kPageSize}}));
  EXPECT_EQ(physical->page_counts(), before);
  EXPECT_EQ(subscription.sequence() % 2, 0u);
  EXPECT_EQ(physical->realization_stats().punches, 0u);
  std::vector<uint8_t> out(1);
  ASSERT_TRUE(physical->read(run.start, out).ok());
  EXPECT_EQ(out[0], 0x77);
  auto blockable =
      physical->set_backing(run, Backing::kReported, ChangeReason::kFreePageReport, true);
  ASSERT_TRUE(blockable.ok());
  EXPECT_TRUE(extents().empty());
}

// Pages outside RAM are refused and change nothing.
TEST_F(GuestPhysicalTest, OutsideRamIsRefused) {
  auto outside = physical->set_backing(IpaRange{Ipa(kRam - kPageSize), 2 * kPageSize},
                                       Backing::kBallooned, ChangeReason::kBalloon);
  ASSERT_FALSE(outside.ok());
  EXPECT_NE(outside.error().message.find("not mapped"), std::string::npos)
      << outside.error().message;
  EXPECT_EQ(backing_at(Ipa(kRam - kPageSize)), Backing::kResident);
  EXPECT_TRUE(recorder.take().empty());
}

// A balloon buffer's runs are one change each; a run outside RAM fails alone.
TEST_F(GuestPhysicalTest, RunBatchIsOneChangePerRun) {
  const std::vector<IpaRange> runs = {IpaRange{Ipa(0x103000), 0x3000},
                                      IpaRange{Ipa(0x200000), 0x1000},
                                      IpaRange{Ipa((kPages + 5) * kPageSize), kPageSize}};
  const BackingBatch batch =
      physical->set_backing_runs(runs, Backing::kBallooned, ChangeReason::kBalloon);
  EXPECT_EQ(batch.runs, 3u);
  EXPECT_EQ(batch.failed_runs, 1u);
  ASSERT_TRUE(batch.first_error.has_value());
  EXPECT_EQ(batch.changed[Backing::kResident], 4u);
  std::vector<std::string> expected = pair_of(IpaRange{Ipa(0x103000), 0x3000}, "balloon");
  auto second = pair_of(IpaRange{Ipa(0x200000), 0x1000}, "balloon");
  expected.insert(expected.end(), second.begin(), second.end());
  EXPECT_EQ(recorder.take(), expected);
  EXPECT_EQ(physical->page_counts()[Backing::kBallooned], 4u);
}

// With the primary mapping registered for userfaultfd MISSING faults (as the fault handler
// registers it), VMM accesses through the Translator never raise a fault: they use the
// alias, where the kernel fills holes itself. A guest-side touch of the primary mapping does
// raise one, which shows the registration is live.
TEST_F(GuestPhysicalTest, VmmAccessesNeverRaiseUserfaultfd) {
  UniqueFd uffd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
  if (!uffd.valid())
    GTEST_SKIP() << "skip: userfaultfd unavailable here: " << std::strerror(errno);
  uffdio_api api{.api = UFFD_API, .features = 0, .ioctls = 0};
  ASSERT_EQ(::ioctl(uffd.get(), UFFDIO_API, &api), 0) << std::strerror(errno);
  uint8_t* primary = physical->memory().guest_base();
  uffdio_register reg{.range = {.start = reinterpret_cast<uint64_t>(primary), .len = kRam},
                      .mode = UFFDIO_REGISTER_MODE_MISSING,
                      .ioctls = 0};
  if (::ioctl(uffd.get(), UFFDIO_REGISTER, &reg) != 0)
    GTEST_SKIP() << "skip: cannot register shmem for MISSING faults: " << std::strerror(errno);
  // The VMM accesses run on their own thread; any fault they raise is counted and resolved
  // here, so a regression fails the test instead of hanging it.
  std::atomic<bool> done{false};
  Result<void> wrote = Ok();
  Result<void> read_back = Ok();
  std::thread vmm([&] {
    const std::vector<uint8_t> data(2 * kPageSize, 0x99);
    wrote = physical->write(Ipa(0x5000), data);  // holes: would fault through the primary
    std::vector<uint8_t> out(16);
    read_back = physical->read(Ipa(0x7000), out);
    done = true;
  });
  int vmm_faults = 0;
  while (!done) {
    pollfd ready{uffd.get(), POLLIN, 0};
    uffd_msg message{};
    if (::poll(&ready, 1, 50) == 1 &&
        ::read(uffd.get(), &message, sizeof(message)) == sizeof(message)) {
      ++vmm_faults;
      uffdio_zeropage zero{
          .range = {.start = message.arg.pagefault.address & ~(kPageSize - 1), .len = kPageSize},
          .mode = 0,
          .zeropage = 0};
      ::ioctl(uffd.get(), UFFDIO_ZEROPAGE, &zero);
    }
  }
  vmm.join();
  EXPECT_EQ(vmm_faults, 0) << "VMM accesses raised userfaultfd faults";
  EXPECT_TRUE(wrote.ok() && read_back.ok());
  EXPECT_EQ(primary[0x5000], 0x99);                 // present now: no fault
  std::thread guest([&] { primary[0x9000] = 1; });  // a hole: the guest side faults
  pollfd fault{uffd.get(), POLLIN, 0};
  const int ready = ::poll(&fault, 1, 5000);
  uffd_msg message{};
  const bool got = ready == 1 && ::read(uffd.get(), &message, sizeof(message)) == sizeof(message);
  uffdio_zeropage zero{
      .range = {.start = reinterpret_cast<uint64_t>(primary + 0x9000), .len = kPageSize},
      .mode = 0,
      .zeropage = 0};
  ::ioctl(uffd.get(), UFFDIO_ZEROPAGE, &zero);  // resolve it (or wake nothing) either way
  guest.join();
  ASSERT_TRUE(got) << "the guest-side touch raised no fault";
  EXPECT_EQ(message.event, UFFD_EVENT_PAGEFAULT);
  EXPECT_EQ(message.arg.pagefault.address & ~(kPageSize - 1),
            reinterpret_cast<uint64_t>(primary + 0x9000));
}

}  // namespace
}  // namespace hvmm::vmm
