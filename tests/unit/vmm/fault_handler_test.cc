// Tests of the userfaultfd fault handler on a real memfd (no KVM): threads touch the
// registered mapping and must see zeros, faults are counted by kind and resolution, the
// adaptive window keeps random touches from allocating much more than they touch, pages the
// alias filled first survive (EEXIST), and reclaimed pages fail cleanly.
#include "hvmm/vmm/fault/fault_handler.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "fault_test_support.h"
#include "hvmm/vmm/machine/exit_status.h"

namespace hvmm::vmm {
namespace {

using namespace std::chrono_literals;
using testing::FakeResolver;
using testing::kRamBase;
using testing::TestMemory;

constexpr uint64_t kMemory = 64ull << 20;
constexpr uint64_t kPages = kMemory / kPageSize;

// The calling thread's id, as UFFD_FEATURE_THREAD_ID reports it.
pid_t this_tid() {
  return static_cast<pid_t>(::syscall(SYS_gettid));
}

// True when every byte of the page at `page` is zero.
bool page_is_zero(const uint8_t* page) {
  return std::all_of(page, page + kPageSize, [](uint8_t b) { return b == 0; });
}

class FaultHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::userfaultfd_unavailable(); !why.empty()) {
      GTEST_SKIP() << "skip: " << why;
    }
    ASSERT_NE(memory.primary.data(), nullptr);
    ASSERT_NE(memory.alias.data(), nullptr);
  }
  // Start a handler over the whole memory with `config`'s options.
  void start(FaultHandlerConfig config = {}) {
    config.regions = {memory.region()};
    config.memfd = memory.fd.get();
    config.vcpus = &vcpus;
    config.stop = [this](int status, const std::string& reason) {
      stop_status = status;
      std::lock_guard guard(stop_lock);
      stop_reason = reason;
    };
    auto made = FaultHandler::create(resolver, std::move(config));
    ASSERT_TRUE(made.ok()) << made.error().message;
    handler = std::move(*made);
  }
  // Touch (write one byte to) each page of `pages` in order from a vCPU thread `vcpu`,
  // checking that each page read zero before the write; returns the pages that did not.
  uint64_t touch(const std::vector<uint64_t>& pages, unsigned vcpu = 0) {
    std::atomic<uint64_t> dirty{0};
    std::thread toucher([&] {
      vcpus.add(this_tid(), vcpu);
      for (uint64_t page : pages) {
        uint8_t* at = memory.primary.data() + page * kPageSize;
        if (!page_is_zero(at))
          ++dirty;
        at[page % kPageSize] = 1;
      }
      vcpus.remove(this_tid());
    });
    toucher.join();
    return dirty.load();
  }

  // The counts once the handler finished the fault it is on: a faulting thread is woken by
  // the fill, before the handler counts what it did.
  FaultCounts settled_counts() const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (handler->health().resolving && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return handler->counts();
  }

  TestMemory memory{kMemory};
  FakeResolver resolver{kPages};
  VcpuRegistry vcpus;
  std::unique_ptr<FaultHandler> handler;
  std::atomic<int> stop_status{-1};
  std::mutex stop_lock;
  std::string stop_reason;
};

// Every page of the sequence [0, n).
std::vector<uint64_t> sequential(uint64_t n) {
  std::vector<uint64_t> pages(n);
  for (uint64_t i = 0; i < n; ++i)
    pages[i] = i;
  return pages;
}

// `n` distinct pages of [0, kPages) in a seeded random order.
std::vector<uint64_t> random_pages(uint64_t n, unsigned seed) {
  std::vector<uint64_t> pages = sequential(kPages);
  std::mt19937_64 random(seed);
  std::shuffle(pages.begin(), pages.end(), random);
  pages.resize(n);
  return pages;
}

// A sequential stream reads zeros everywhere and, with the window growing to 2 MiB, needs
// far fewer faults than pages; every fault is a missing page resolved by zero fill.
TEST_F(FaultHandlerTest, SequentialTouchesAreZeroAndTheWindowGrows) {
  start();
  EXPECT_EQ(touch(sequential(kPages)), 0u);
  const FaultCounts counts = settled_counts();
  EXPECT_EQ(counts.pages_filled, kPages);
  EXPECT_EQ(counts.total(), counts.faults[2][3]) << "all missing / zero-fill";
  EXPECT_LT(counts.total(), kPages / 64) << "the window did not grow";
  EXPECT_EQ(counts.unattributed, 0u);
  EXPECT_EQ(memory.allocated(), kMemory);
}

// Each fill method gives the same zeros and fills every page once.
TEST_F(FaultHandlerTest, EveryFillMethodGivesZeros) {
  for (ZeroFillMethod method :
       {ZeroFillMethod::kZeroPage, ZeroFillMethod::kCopy, ZeroFillMethod::kFallocate}) {
    SCOPED_TRACE(zero_fill_method_name(method));
    TestMemory fresh(8 << 20);
    FakeResolver fresh_resolver(fresh.size / kPageSize);
    FaultHandlerConfig config;
    config.regions = {fresh.region()};
    config.memfd = fresh.fd.get();
    config.fill = method;
    auto made = FaultHandler::create(fresh_resolver, std::move(config));
    ASSERT_TRUE(made.ok()) << made.error().message;
    uint64_t dirty = 0;
    std::thread toucher([&] {
      for (uint64_t page = 0; page < fresh.size / kPageSize; ++page) {
        uint8_t* at = fresh.primary.data() + page * kPageSize;
        dirty += page_is_zero(at) ? 0 : 1;
        at[7] = 0x5a;
      }
    });
    toucher.join();
    EXPECT_EQ(dirty, 0u);
    EXPECT_EQ((*made)->counts().pages_filled, fresh.size / kPageSize);
    EXPECT_EQ(fresh.alias.data()[7], 0x5a) << "the alias sees what the primary wrote";
  }
}

// Random touches shrink the window to one page: the memfd's allocated blocks stay within
// 1.25x of the touched memory, and every touched page read zero.
TEST_F(FaultHandlerTest, RandomTouchesAllocateNearTheTouchedSet) {
  start();
  const auto pages = random_pages(2048, 7);
  EXPECT_EQ(touch(pages), 0u);
  const uint64_t touched = pages.size() * kPageSize;
  EXPECT_LE(memory.allocated(), touched + touched / 4)
      << "allocated " << memory.allocated() << " for " << touched << " touched";
  EXPECT_GE(memory.allocated(), touched);
}

// Threads touching disjoint halves at once get their own windows and all see zeros.
TEST_F(FaultHandlerTest, ConcurrentThreadsEachGetZeros) {
  FaultHandlerConfig config;
  config.threads = 2;
  start(std::move(config));
  std::vector<uint64_t> low, high;
  for (uint64_t page = 0; page < kPages / 2; ++page) {
    low.push_back(page);
    high.push_back(kPages - 1 - page);  // a backward stream: its window grows too
  }
  std::atomic<uint64_t> dirty{0};
  std::thread a([&] { dirty += touch(low, 0); });
  std::thread b([&] { dirty += touch(high, 1); });
  a.join();
  b.join();
  EXPECT_EQ(dirty.load(), 0u);
  // Every page is filled exactly once; where the two streams' windows meet, a page the other
  // thread filled first is met again (EEXIST) and counted as existing as well.
  EXPECT_EQ(settled_counts().pages_filled, kPages);
}

// The alias fills the faulting page while its fault is pending: the fill meets EEXIST, the
// thread is still woken, and it sees the alias's data, not zeros.
TEST_F(FaultHandlerTest, AliasFillDuringAPendingFaultSurvives) {
  const uint64_t page = 300;
  resolver.on_classify = [&](Ipa ipa) {
    if (FakeResolver::index(ipa) == page) {
      memory.alias.data()[page * kPageSize + 9] = 0x77;
    }
  };
  start();
  std::thread toucher([&] {
    volatile uint8_t* at = memory.primary.data() + page * kPageSize;
    EXPECT_EQ(at[9], 0x77);
  });
  toucher.join();
  EXPECT_EQ(settled_counts().pages_existing, 1u);
  EXPECT_EQ(settled_counts().of_kind(FaultKind::kMissing), 1u);
}

// Pages of a window the alias wrote earlier are stepped over; the rest are zero filled.
TEST_F(FaultHandlerTest, WindowStepsOverPagesTheAliasFilled) {
  for (uint64_t page = 10; page < 200; page += 17) {
    memory.alias.data()[page * kPageSize] = 0x33;
  }
  start();
  uint64_t wrong = 0;
  std::thread toucher([&] {
    for (uint64_t page = 0; page < 256; ++page) {
      const uint8_t want = (page >= 10 && page < 200 && (page - 10) % 17 == 0) ? 0x33 : 0;
      wrong += memory.primary.data()[page * kPageSize] == want ? 0 : 1;
    }
  });
  toucher.join();
  EXPECT_EQ(wrong, 0u);
  EXPECT_GT(settled_counts().pages_existing, 0u);
}

// Ballooned pages fault as "ballooned", reported ones as "missing", both zero filled, and
// the run never crosses into a page of another condition.
TEST_F(FaultHandlerTest, KindsFollowThePageCondition) {
  resolver.set(0, 16, PageCondition::kBallooned);
  resolver.set(16, 16, PageCondition::kReported);
  start();
  EXPECT_EQ(touch(sequential(32)), 0u);
  const FaultCounts counts = settled_counts();
  EXPECT_GE(counts.of_kind(FaultKind::kBallooned), 1u);
  EXPECT_GE(counts.of_kind(FaultKind::kMissing), 1u);
  EXPECT_EQ(counts.pages_filled, 32u);
  EXPECT_EQ(memory.allocated(), 32 * kPageSize) << "a window ran past the ballooned run";
}

// A reclaimed page with no ReclaimedPages to load it from: the fault fails, the stop
// callback names the IPA with internal-error, and stopping the handler and closing the
// userfaultfd frees the thread.
TEST_F(FaultHandlerTest, ReclaimedPageFailsAndStopsTheVmCleanly) {
  resolver.set(40, 1, PageCondition::kReclaimed);
  start();
  std::thread toucher([&] { memory.primary.data()[40 * kPageSize] = 1; });
  for (int i = 0; i < 500 && stop_status.load() == -1; ++i)
    std::this_thread::sleep_for(2ms);
  ASSERT_EQ(stop_status.load(), kExitInternalError);
  {
    std::lock_guard guard(stop_lock);
    EXPECT_NE(stop_reason.find("no reclaim store"), std::string::npos) << stop_reason;
    EXPECT_NE(stop_reason.find(fmt::format("{:#x}", (kRamBase + 40 * kPageSize).value())),
              std::string::npos)
        << stop_reason;
  }
  const FaultCounts counts = settled_counts();
  EXPECT_EQ(counts.faults[static_cast<size_t>(FaultKind::kReclaimed)]
                         [static_cast<size_t>(FaultResolution::kFailed)],
            1u);
  EXPECT_TRUE(handler->stop().ok());
  handler.reset();  // closes the userfaultfd: the kernel resolves the fault itself
  toucher.join();
}

// Faults are logged as the JSON fault record with the vCPU, kind and resolution.
TEST_F(FaultHandlerTest, FaultsAreLoggedWithTheirVcpu) {
  char name[] = "/tmp/hvmm-uffd-log-XXXXXX";
  ::close(::mkstemp(name));
  auto opened = open_log_file(name, "--fault-log", LogOpenMode::kAppend);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  FaultLog log(std::move(*opened));
  FaultHandlerConfig config;
  config.log = &log;
  config.vm = "uffd";
  start(std::move(config));
  EXPECT_EQ(touch({3}, 5), 0u);
  handler.reset();
  std::ifstream file(name);
  std::string line;
  ASSERT_TRUE(std::getline(file, line));
  ::unlink(name);
  EXPECT_NE(line.find("\"vm\":\"uffd\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"vcpu\":5"), std::string::npos) << line;
  EXPECT_NE(line.find(fmt::format("\"ipa\":\"{:#x}\"", (kRamBase + 3 * kPageSize).value())),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("\"access\":\"read\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"kind\":\"missing\",\"resolution\":\"zero-fill\""), std::string::npos)
      << line;
  EXPECT_EQ(log.recorded(), 1u);
}

// madvise(MADV_REMOVE) on the registered range is delivered as EVENT_REMOVE and counted.
TEST_F(FaultHandlerTest, RemoveEventsAreCounted) {
  start();
  EXPECT_EQ(touch(sequential(16)), 0u);
  ASSERT_EQ(::madvise(memory.primary.data(), 16 * kPageSize, MADV_REMOVE), 0);
  // madvise returns once the handler read the event, which it counts just after.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (handler->counts().removes == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(handler->counts().removes, 1u);
  EXPECT_EQ(handler->counts().bytes_removed, 16 * kPageSize);
}

// A write to a write-protected page is a WP fault: counted, unprotected, the write lands.
TEST_F(FaultHandlerTest, WriteProtectFaultsAreUnprotected) {
  FaultHandlerConfig config;
  config.register_write_protect = true;
  auto probe = Userfaultfd::open();
  ASSERT_TRUE(probe.ok());
  if ((probe->features() & UFFD_FEATURE_WP_HUGETLBFS_SHMEM) == 0) {
    GTEST_SKIP() << "skip: userfaultfd offers no WP on shmem (UFFD_FEATURE_WP_HUGETLBFS_SHMEM)";
  }
  start(std::move(config));
  EXPECT_EQ(touch({0}), 0u);
  ASSERT_TRUE(handler->uffd().protect(memory.primary.data(), kPageSize).ok());
  EXPECT_EQ(touch({0}), 1u) << "the page holds the first write";
  EXPECT_EQ(settled_counts().of_kind(FaultKind::kWriteProtect), 1u);
  EXPECT_EQ(settled_counts().resolved(FaultResolution::kUnprotected), 1u);
}

// Stopping an idle handler joins its threads at once; stopping twice is harmless.
TEST_F(FaultHandlerTest, StopJoinsPromptly) {
  FaultHandlerConfig config;
  config.threads = 3;
  start(std::move(config));
  const auto before = std::chrono::steady_clock::now();
  EXPECT_TRUE(handler->stop().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - before, 1s);
  EXPECT_TRUE(handler->stop().ok());
}

}  // namespace
}  // namespace hvmm::vmm
