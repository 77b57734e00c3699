// THE concurrent-writer test of the reclaim window: host threads standing in for vCPUs keep
// writing a seeded pattern with a per-page version into the primary mapping (and one writes
// through the VMM path, GuestPhysical::write), while reclaim windows run over all of RAM
// again and again. Afterwards every byte of every page must equal the model's last write,
// the store must hold an entry exactly for the reclaimed pages (which the memfd no longer
// holds), and the run must have reclaimed, aborted and refaulted pages (every path taken).
// Fixed seeds; HVMM_TEST_SECONDS changes the duration (default 3 s).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "reclaim_window_test_support.h"

namespace hvmm::vmm {
namespace {

using stage2::Backing;

constexpr uint64_t kRam = 8 << 20;
constexpr uint64_t kPages = kRam / kPageSize;
constexpr unsigned kGuestWriters = 3;
constexpr unsigned kWriters = kGuestWriters + 1;  // the last one writes through the VMM path
constexpr uint64_t kSeed = 0xc0ffee;

// Word `i` of page `page` at version `version` (version 0: never written, zero).
uint64_t pattern_word(uint64_t page, uint32_t version, uint64_t i) {
  if (version == 0)
    return 0;
  // One mixed word per 16, the others repeat a value of the page and version (so the pages
  // compress, and the real pool keeps them): every word still differs between versions.
  const uint64_t block = i / 16;
  uint64_t z = kSeed + page * 0x9e3779b97f4a7c15ull + uint64_t{version} * 0xbf58476d1ce4e5b9ull;
  if (i % 16 != 0)
    return (z + block) ^ (uint64_t{version} << 40);
  z += i;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// True when the 512 words at `words` are page `page` at `version`.
bool page_matches(const volatile uint64_t* words, uint64_t page, uint32_t version) {
  for (uint64_t i = 0; i < kPageSize / 8; ++i) {
    if (words[i] != pattern_word(page, version, i))
      return false;
  }
  return true;
}

// How long the writers and the reclaim passes run.
std::chrono::milliseconds test_duration() {
  const char* seconds = std::getenv("HVMM_TEST_SECONDS");
  return std::chrono::milliseconds(seconds != nullptr ? std::atoll(seconds) * 1000 : 3000);
}

class ReclaimConcurrentTest : public testing::ReclaimFixture {
 protected:
  // Writer `id`: pages p with p % kWriters == id, in a seeded random order; one time in
  // four it first checks the page against the model (a read of a reclaimed page refaults).
  void guest_writer(unsigned id) {
    std::mt19937_64 random(kSeed + id);
    while (!stop.load(std::memory_order_relaxed)) {
      const uint64_t page = (random() % (kPages / kWriters)) * kWriters + id;
      auto* words = reinterpret_cast<volatile uint64_t*>(guest(Ipa(page * kPageSize)));
      if (random() % 4 == 0 && !page_matches(words, page, versions[page])) {
        mismatches.fetch_add(1);
        describe(words, page, versions[page]);
      }
      const uint32_t version = ++versions[page];
      for (uint64_t i = 0; i < kPageSize / 8; ++i)
        words[i] = pattern_word(page, version, i);
    }
  }
  // The VMM writer: the same through GuestPhysical::write, in two halves (so a window can
  // fall between them), checking through GuestPhysical::read.
  void vmm_writer() {
    const unsigned id = kWriters - 1;
    std::mt19937_64 random(kSeed + id);
    std::vector<uint64_t> words(kPageSize / 8);
    auto bytes = [&](size_t first, size_t count) {
      return std::span<uint8_t>(reinterpret_cast<uint8_t*>(words.data()) + first, count);
    };
    while (!stop.load(std::memory_order_relaxed)) {
      const uint64_t page = (random() % (kPages / kWriters)) * kWriters + id;
      const Ipa ipa(page * kPageSize);
      if (random() % 4 == 0) {
        if (!physical->read(ipa, bytes(0, kPageSize)).ok() ||
            !page_matches(words.data(), page, versions[page])) {
          mismatches.fetch_add(1);
          describe(words.data(), page, versions[page]);
        }
      }
      const uint32_t version = ++versions[page];
      for (uint64_t i = 0; i < words.size(); ++i)
        words[i] = pattern_word(page, version, i);
      if (!physical->write(ipa, bytes(0, kPageSize / 2)).ok() ||
          !physical->write(ipa + kPageSize / 2, bytes(kPageSize / 2, kPageSize / 2)).ok())
        vmm_errors.fetch_add(1);
    }
  }

  // Print which version each stretch of a wrong page holds (-1: none), for the diagnosis.
  void describe(const volatile uint64_t* words, uint64_t page, uint32_t version) {
    if (described.fetch_add(1) >= 10)
      return;
    std::string runs;
    int last = -2;
    for (uint64_t i = 0; i < kPageSize / 8; ++i) {
      int found = -1;
      for (uint32_t v = 0; v <= version && found < 0; ++v) {
        if (words[i] == pattern_word(page, v, i))
          found = static_cast<int>(v);
      }
      if (found != last)
        runs += fmt::format(" [{}]=v{}", i, found);
      last = found;
    }
    std::printf("page %lu (writer %lu, backing %s) should be v%u:%s\n", page, page % kWriters,
                stage2::backing_name(backing_at(Ipa(page * kPageSize))), version, runs.c_str());
  }

  // Writers against repeated passes over all of RAM for test_duration(), then every check.
  void run_writers_against_passes();

  std::atomic<bool> stop{false};
  std::vector<uint32_t> versions = std::vector<uint32_t>(kPages, 0);  // each owned by one writer
  std::atomic<uint64_t> mismatches{0};
  std::atomic<uint64_t> vmm_errors{0};
  std::atomic<uint64_t> described{0};
};

// Repeated reclaim passes over all of RAM under concurrent guest and VMM writers lose no
// write, and exercise the reclaim, abort and refault paths.
TEST_F(ReclaimConcurrentTest, NoWriteIsLost) {
  run_writers_against_passes();
}

// The same with the compressed pool that VMs run with as the store.
TEST_F(ReclaimConcurrentTest, NoWriteIsLostWithTheCompressedPool) {
  use_compressed_pool();
  run_writers_against_passes();
}

void ReclaimConcurrentTest::run_writers_against_passes() {
  start(kRam, /*threads=*/2);
  std::vector<std::thread> writers;
  for (unsigned id = 0; id < kGuestWriters; ++id)
    writers.emplace_back([this, id] { guest_writer(id); });
  writers.emplace_back([this] { vmm_writer(); });
  uint64_t reclaimed = 0, aborted = 0, passes = 0, kept = 0;
  const auto end = std::chrono::steady_clock::now() + test_duration();
  while (std::chrono::steady_clock::now() < end) {
    auto batch = reclaimer->reclaim({{IpaRange{Ipa(0), kRam}}});
    ASSERT_TRUE(batch.ok()) << batch.error().message;
    ASSERT_FALSE(batch->error) << batch->error->message;
    reclaimed += batch->reclaimed;
    aborted += batch->aborted.size();
    kept += batch->incompressible.size() + batch->full.size();
    ++passes;
  }
  stop = true;
  for (std::thread& writer : writers)
    writer.join();
  // Entries exactly for the reclaimed pages, which the memfd does not hold.
  uint64_t reclaimed_now = 0;
  for (uint64_t page = 0; page < kPages; ++page) {
    const Ipa ipa(page * kPageSize);
    const bool is_reclaimed = backing_at(ipa) == Backing::kReclaimed;
    reclaimed_now += is_reclaimed;
    ASSERT_EQ(active_store().contains(ipa), is_reclaimed) << "page " << page;
    if (is_reclaimed) {
      const HostOffset offset(ipa.value());
      auto extent = physical->memory().extent_around(offset, HostRange{offset, kPageSize});
      ASSERT_TRUE(extent.ok());
      EXPECT_FALSE(extent->allocated) << "reclaimed page " << page << " is still in the memfd";
    }
  }
  EXPECT_EQ(physical->page_counts(), physical->count_pages_by_walk());
  // Every byte, read through the guest's mapping (reclaimed pages refault).
  uint64_t wrong = 0;
  std::thread reader([&] {
    for (uint64_t page = 0; page < kPages; ++page) {
      auto* words = reinterpret_cast<const volatile uint64_t*>(guest(Ipa(page * kPageSize)));
      if (!page_matches(words, page, versions[page])) {
        ++wrong;
        describe(words, page, versions[page]);
      }
    }
  });
  reader.join();
  EXPECT_EQ(wrong, 0u) << "pages whose contents differ from the last write";
  EXPECT_EQ(mismatches.load(), 0u) << "checks during the run that saw a stale page";
  EXPECT_EQ(vmm_errors.load(), 0u);
  EXPECT_EQ(stopped(), "");
  RecordProperty("passes", static_cast<int>(passes));
  std::printf(
      "passes %lu, reclaimed %lu, aborted %lu, kept %lu, refaults %lu (pages %lu), "
      "vmm restores %lu, reclaimed at the end %lu, WP faults %lu\n",
      passes, reclaimed, aborted, kept, events.refaults.load(), events.refaulted_pages.load(),
      events.vmm_restored.load(), reclaimed_now,
      handler->counts().of_kind(FaultKind::kWriteProtect));
  EXPECT_GT(reclaimed, 0u);
  EXPECT_GT(aborted, 0u);
  EXPECT_GT(events.refaults.load(), 0u);
  EXPECT_GT(events.vmm_restored.load(), 0u);
}

}  // namespace
}  // namespace hvmm::vmm
