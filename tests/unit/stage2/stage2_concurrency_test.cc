// Concurrency of the stage-2 runtime: readers translating through a Translator, and interval
// subscribers reading the map between read_begin and read_retry, while a writer maps, unmaps
// and protects random ranges under the exclusive lock; the TLB's seqlock under concurrent
// fills and invalidations; notifier subscriptions churning during invalidations.
// Runs under ThreadSanitizer in CI (label "concurrency"); every loop is bounded in time and
// iterations.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "hvmm/stage2/mmu_notifier.h"
#include "hvmm/stage2/stage2_map.h"
#include "hvmm/stage2/stage2_tlb.h"
#include "hvmm/stage2/translator.h"

namespace hvmm::stage2 {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr uint16_t kVmid = 3;
constexpr uint64_t kIpaBase = 0x40000000;  // 1 GiB aligned: 2 MiB blocks can form
constexpr uint64_t kBlockPages = 512;      // pages in a 2 MiB block
constexpr unsigned kReaders = 2;

// The shape of a stress run.
struct StressOptions {
  bool invalidate_tlb = true;     // register TlbInvalidationHooks
  bool notify = true;             // register NotifierHooks (sequence counts follow the map)
  bool blocks = false;            // allow 2 MiB blocks (1024 IPA pages, whole-block operations)
  unsigned readers = kReaders;    // threads translating through the Translator
  unsigned interval_readers = 1;  // threads reading the map under interval subscriptions
  uint64_t pages() const { return blocks ? 2 * kBlockPages : 64; }
  uint64_t backing_pages() const { return blocks ? 4 * kBlockPages : 256; }
};
// The reference model of one IPA page, as the writer last left it:
// bit 0 mapped, bits [2:1] Permissions, bits [23:8] output page, bits [63:32] version.
struct PageModel {
  bool mapped;
  Permissions permissions;
  uint64_t output_page;

  static uint64_t encode(bool mapped, Permissions permissions, uint64_t output_page,
                         uint64_t version) {
    return (mapped ? 1 : 0) | (uint64_t{static_cast<uint8_t>(permissions)} << 1) |
           (output_page << 8) | (version << 32);
  }
  static PageModel decode(uint64_t raw) {
    return PageModel{(raw & 1) != 0, static_cast<Permissions>((raw >> 1) & 3), (raw >> 8) & 0xffff};
  }
};

// Frees what std::aligned_alloc returned.
struct FreeDeleter {
  void operator()(std::byte* memory) const { std::free(memory); }
};

// What a run of the harness saw.
struct HarnessResult {
  uint64_t checks = 0;      // translations whose model was stable across the call
  uint64_t violations = 0;  // translations that contradicted a stable model
  uint64_t writer_ops = 0;
  uint64_t interval_passes = 0;      // interval reads that read_retry accepted
  uint64_t interval_retries = 0;     // interval reads that read_retry rejected
  uint64_t interval_violations = 0;  // accepted reads that saw another generation or state
  uint64_t interval_callbacks = 0;   // invalidate_range_start calls the subscribers received
  std::string first_violation;
};

// The writer's side of the interval check: while a change is inside its invalidation (after
// NotifierHooks made the overlapping sequences odd, before they become even again), publish
// the model of every page it changes, each with a new generation in its upper bits.
class PublishingHooks final : public ChangeHooks {
 public:
  explicit PublishingHooks(std::vector<std::atomic<uint64_t>>& model) : model_(model) {}
  // Queue the model of a page for the next change (writer thread only).
  void stage(uint64_t page, uint64_t value) { pending_.emplace_back(page, value); }
  void range_updated(const Change&) override {
    for (const auto& [page, value] : pending_)
      model_[page].store(value, std::memory_order_release);
    pending_.clear();
  }

 private:
  std::vector<std::atomic<uint64_t>>& model_;
  std::vector<std::pair<uint64_t, uint64_t>> pending_;
};

// Counts the invalidations an interval subscriber is told about.
class CountingOps final : public IntervalOps {
 public:
  bool invalidate_range_start(const Change&) override {
    starts.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  std::atomic<uint64_t> starts{0};
};

// A VM (map, lock, TLB, notifiers, translator) plus the writer/readers harness.
class StressVm {
 public:
  explicit StressVm(StressOptions options) : options_(options), model_(options.pages()) {
    backing_.reset(static_cast<std::byte*>(
        std::aligned_alloc(kPageSize, options.backing_pages() * kPageSize)));
    map_.emplace(std::move(Stage2Map::create(*IpaSpace::create(32), tables_,
                                             {.max_block_level = options.blocks ? 1u : 0u}))
                     .value());
    if (options.notify)
      map_->add_hooks(notifier_hooks_);
    if (options.invalidate_tlb)
      map_->add_hooks(tlb_hooks_);
    map_->add_hooks(publishing_hooks_);
    translator_.emplace(
        std::move(
            Translator::create(*map_, lock_, tlb_, registry_, kVmid,
                               HostBacking{backing_.get(), options.backing_pages() * kPageSize}))
            .value());
    for (auto& page : model_)
      page.store(0);
  }
  ~StressVm() {
    translator_.reset();
    map_->remove_hooks(notifier_hooks_);
    map_->remove_hooks(tlb_hooks_);
    map_->remove_hooks(publishing_hooks_);
  }

  // Run one writer and kReaders readers for up to `duration`; stop early after
  // `stop_after_violations` violations.
  HarnessResult run(std::chrono::milliseconds duration, uint64_t stop_after_violations) {
    const auto deadline = Clock::now() + duration;
    std::atomic<bool> stop{false};
    {
      std::vector<std::jthread> threads;
      threads.emplace_back([&] { writer(deadline, stop); });
      for (unsigned i = 0; i < options_.readers; ++i)
        threads.emplace_back([&, i] { reader(i, deadline, stop, stop_after_violations); });
      for (unsigned i = 0; i < options_.interval_readers; ++i)
        threads.emplace_back([&, i] { interval_reader(i, deadline, stop, stop_after_violations); });
    }
    HarnessResult result;
    result.checks = checks_.load();
    result.violations = violations_.load();
    result.writer_ops = writer_ops_.load();
    result.interval_passes = interval_passes_.load();
    result.interval_retries = interval_retries_.load();
    result.interval_violations = interval_violations_.load();
    result.interval_callbacks = interval_callbacks_.load();
    std::lock_guard lock(message_mutex_);
    result.first_violation = first_violation_;
    return result;
  }

  const Stage2Tlb& tlb() const { return tlb_; }
  bool writer_failed() const { return writer_failed_.load(); }
  uint64_t blocks_mapped() const { return blocks_mapped_.load(); }

 private:
  // Random unmap / map (young or old) / protect / mkold of 1..8 pages (or a whole block), each
  // under the exclusive lock; the model of every page it touches is published from inside the
  // change (PublishingHooks). Old pages make readers set the access flag under the shared lock.
  void writer(Clock::time_point deadline, std::atomic<bool>& stop) {
    std::mt19937_64 random(7);
    for (uint64_t op = 0; op < 200000 && !stop.load() && Clock::now() < deadline; ++op) {
      const bool whole_block = options_.blocks && random() % 4 == 0;
      const uint64_t first = whole_block ? kBlockPages * (random() % 2) : random() % pages();
      const uint64_t count =
          whole_block ? kBlockPages : std::min<uint64_t>(1 + random() % 8, pages() - first);
      const IpaRange range{Ipa(kIpaBase + first * kPageSize), count * kPageSize};
      const auto permissions = random() % 2 ? Permissions::kReadWrite : Permissions::kReadOnly;
      const uint64_t output =
          whole_block ? kBlockPages * (random() % (options_.backing_pages() / kBlockPages))
                      : random() % (options_.backing_pages() - count);
      const unsigned kind = static_cast<unsigned>(random() % 4);
      const bool young = random() % 2 == 0;
      std::unique_lock lock(lock_);
      if (kind == 0 || (kind == 1 && any_mapped(first, count))) {
        stage(first, count, false, Permissions::kNone, 0);
        check(map_->unmap(range));
      } else if (kind == 1) {
        stage(first, count, true, permissions, output);
        check(map_->map(range, HostOffset(output * kPageSize),
                        Attributes{.permissions = permissions}, ChangeReason::kMap, young));
        if (whole_block && map_->translate(range.start)->level == 1)
          blocks_mapped_.fetch_add(1);
      } else if (kind == 3) {
        map_->mkold(range);  // aging: readers' walks set the access flag again, concurrently
      } else if (all_mapped(first, count)) {
        for (uint64_t page = first; page < first + count; ++page) {
          const PageModel old = PageModel::decode(model_[page].load());
          stage(page, 1, true, permissions, old.output_page);
        }
        check(map_->protect(range, permissions, true));
      }
      lock.unlock();
      writer_ops_.fetch_add(1);
      if (op % 4 == 0)
        std::this_thread::yield();  // let readers take the shared lock
    }
  }

  // Translate random pages; whenever the model was the same before and after the call, the
  // result must match it exactly: unmapped → error, denied → error, else the model's pointer.
  void reader(unsigned seed, Clock::time_point deadline, std::atomic<bool>& stop,
              uint64_t stop_after_violations) {
    std::mt19937_64 random(100 + seed);
    for (uint64_t i = 0; i < 5000000 && !stop.load() && Clock::now() < deadline; ++i) {
      const uint64_t page = random() % pages();
      const uint64_t offset = random() % kPageSize;
      const Access access = random() % 2 ? Access::kRead : Access::kWrite;
      const uint64_t before = model_[page].load(std::memory_order_acquire);
      auto result = translator_->translate(Ipa(kIpaBase + page * kPageSize + offset), access);
      const uint64_t after = model_[page].load(std::memory_order_acquire);
      if (i % 128 == 0)
        std::this_thread::yield();  // glibc's rwlock prefers readers: let the writer in
      if (before != after)
        continue;
      checks_.fetch_add(1, std::memory_order_relaxed);
      const PageModel model = PageModel::decode(before);
      const bool allowed =
          model.mapped && (access == Access::kRead ? allows_read(model.permissions)
                                                   : allows_write(model.permissions));
      std::byte* expected = backing_.get() + model.output_page * kPageSize + offset;
      if (allowed ? (result.ok() && *result == expected) : !result.ok())
        continue;
      report(fmt::format(
          "page {} ({}, {}, output page {}) {}: got {}", page, model.mapped ? "mapped" : "unmapped",
          permissions_name(model.permissions, true), model.output_page, access_name(access),
          result.ok() ? "a translation" : result.error().message));
      if (violations_.load() >= stop_after_violations)
        stop.store(true);
    }
  }

  // Read pages through the map between read_begin and read_retry on a subscription of a few
  // pages (replaced every 64 reads). When read_retry accepts a read, no invalidation of the
  // interval began since read_begin, so the page's generation must not have moved and the
  // translation must be the one the model published with it.
  void interval_reader(unsigned seed, Clock::time_point deadline, std::atomic<bool>& stop,
                       uint64_t stop_after_violations) {
    std::mt19937_64 random(200 + seed);
    CountingOps ops;
    for (uint64_t round = 0; round < 100000 && !stop.load() && Clock::now() < deadline; ++round) {
      const uint64_t first = random() % pages();
      const uint64_t count = std::min<uint64_t>(1 + random() % 16, pages() - first);
      auto subscription =
          registry_.subscribe(IpaRange{Ipa(kIpaBase + first * kPageSize), count * kPageSize}, &ops);
      if (!subscription.ok()) {
        report(&interval_violations_, "subscribe: " + subscription.error().message);
        return;
      }
      for (unsigned i = 0; i < 64; ++i) {
        const uint64_t page = first + random() % count;
        const uint64_t offset = random() % kPageSize;
        const uint64_t sequence = subscription->read_begin();
        const uint64_t before = model_[page].load(std::memory_order_acquire);
        if (i % 4 == 0)
          std::this_thread::yield();  // widen the window in which the writer can overtake us
        std::optional<Translation> translation;
        {
          std::shared_lock lock(lock_);
          translation = map_->translate(Ipa(kIpaBase + page * kPageSize + offset));
        }
        // Loaded before read_retry: a publish seen here was made inside an invalidation that
        // had already moved the sequence, so read_retry must reject the read. Loaded after
        // read_retry, it could see a change that legitimately began after the read ended.
        const uint64_t after = model_[page].load(std::memory_order_acquire);
        if (subscription->read_retry(sequence)) {
          interval_retries_.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        interval_passes_.fetch_add(1, std::memory_order_relaxed);
        const PageModel model = PageModel::decode(before);
        const bool matches =
            model.mapped
                ? translation && translation->attributes.permissions == model.permissions &&
                      translation->output.value() == model.output_page * kPageSize + offset
                : !translation;
        if (before == after && matches)
          continue;
        report(&interval_violations_,
               fmt::format("read_retry accepted a read of page {} at generation {} (now {}): "
                           "model {} output page {}, map {}",
                           page, before >> 32, after >> 32, model.mapped ? "mapped" : "unmapped",
                           model.output_page,
                           translation ? fmt::format("{}", translation->output) : "unmapped"));
        if (violations_.load() >= stop_after_violations)
          stop.store(true);
      }
      if (round % 4 == 0)
        std::this_thread::yield();
    }
    subscription_done(ops);
  }
  void subscription_done(const CountingOps& ops) {
    interval_callbacks_.fetch_add(ops.starts.load(), std::memory_order_relaxed);
  }

  bool any_mapped(uint64_t first, uint64_t count) const {
    for (uint64_t page = first; page < first + count; ++page)
      if (PageModel::decode(model_[page].load()).mapped)
        return true;
    return false;
  }
  bool all_mapped(uint64_t first, uint64_t count) const {
    for (uint64_t page = first; page < first + count; ++page)
      if (!PageModel::decode(model_[page].load()).mapped)
        return false;
    return true;
  }
  // Queue the model of pages [first, first + count) for the next change, one generation on.
  void stage(uint64_t first, uint64_t count, bool mapped, Permissions permissions,
             uint64_t output) {
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t generation = (model_[first + i].load() >> 32) + 1;
      publishing_hooks_.stage(
          first + i, PageModel::encode(mapped, permissions, mapped ? output + i : 0, generation));
    }
  }
  void check(const Result<void>& result) {
    if (!result.ok()) {
      writer_failed_.store(true);
      report("writer: " + result.error().message);
    }
  }
  // Count a violation of the interval check too.
  void report(std::atomic<uint64_t>* counter, std::string message) {
    counter->fetch_add(1);
    report(std::move(message));
  }
  void report(std::string message) {
    violations_.fetch_add(1);
    std::lock_guard lock(message_mutex_);
    if (first_violation_.empty())
      first_violation_ = std::move(message);
  }

  HeapTableAllocator tables_;
  std::optional<Stage2Map> map_;
  std::shared_mutex lock_;
  uint64_t pages() const { return options_.pages(); }

  StressOptions options_;
  Stage2Tlb tlb_{32};  // smaller than the page count: evictions and refills all the time
  NotifierRegistry registry_;
  NotifierHooks notifier_hooks_{registry_};
  TlbInvalidationHooks tlb_hooks_{tlb_, kVmid};
  std::unique_ptr<std::byte, FreeDeleter> backing_;
  std::optional<Translator> translator_;
  std::vector<std::atomic<uint64_t>> model_;
  PublishingHooks publishing_hooks_{model_};
  std::atomic<uint64_t> interval_passes_{0};
  std::atomic<uint64_t> interval_retries_{0};
  std::atomic<uint64_t> interval_violations_{0};
  std::atomic<uint64_t> interval_callbacks_{0};
  std::atomic<uint64_t> checks_{0};
  std::atomic<uint64_t> violations_{0};
  std::atomic<uint64_t> writer_ops_{0};
  std::atomic<uint64_t> blocks_mapped_{0};  // whole-block maps that produced a 2 MiB leaf
  std::atomic<bool> writer_failed_{false};
  std::mutex message_mutex_;
  std::string first_violation_;
};

// Interval subscribers read often, were told of invalidations, were sent back by read_retry
// at times, and every read read_retry accepted saw the generation and translation of its time.
void expect_interval_reads_held(const HarnessResult& result) {
  fmt::print("interval reads: {} accepted, {} retried, {} invalidations seen\n",
             result.interval_passes, result.interval_retries, result.interval_callbacks);
  EXPECT_EQ(result.interval_violations, 0u) << result.first_violation;
  EXPECT_GT(result.interval_passes, 1000u);
  EXPECT_GT(result.interval_retries, 0u);
  EXPECT_GT(result.interval_callbacks, 10u);
}

// With the TLB and notifier hooks registered, no reader ever sees a translation that
// contradicts what the writer had published before the reader started.
TEST(Stage2ConcurrencyTest, ReadersNeverSeeStaleTranslations) {
  StressVm vm({.invalidate_tlb = true});
  const HarnessResult result = vm.run(3000ms, 1);
  fmt::print("{} stable-model checks, {} writer ops, {} TLB hits, {} refused fills\n",
             result.checks, result.writer_ops, vm.tlb().stats().hits,
             vm.tlb().stats().fills_refused);
  EXPECT_FALSE(vm.writer_failed());
  EXPECT_EQ(result.violations, 0u) << result.first_violation;
  EXPECT_GT(result.checks, 1000u);
  EXPECT_GT(result.writer_ops, 100u);
  EXPECT_GT(vm.tlb().stats().hits, 100u);
  EXPECT_GT(vm.tlb().stats().entries_invalidated, 10u);
  expect_interval_reads_held(result);
}

// The same with 2 MiB blocks: whole-block maps, unmaps and protects, and small changes that
// split blocks; every 4 KiB page of a block must translate to its own host page.
TEST(Stage2ConcurrencyTest, ReadersNeverSeeStaleTranslationsWithBlocks) {
  StressVm vm({.invalidate_tlb = true, .blocks = true});
  const HarnessResult result = vm.run(3000ms, 1);
  fmt::print("{} stable-model checks, {} writer ops ({} 2 MiB blocks mapped), {} TLB hits\n",
             result.checks, result.writer_ops, vm.blocks_mapped(), vm.tlb().stats().hits);
  EXPECT_FALSE(vm.writer_failed());
  EXPECT_EQ(result.violations, 0u) << result.first_violation;
  EXPECT_GT(result.checks, 1000u);
  EXPECT_GT(result.writer_ops, 100u);
  EXPECT_GT(vm.blocks_mapped(), 0u);
  expect_interval_reads_held(result);
}

// The same harness without TLB invalidation must catch stale translations: this shows the
// check above can fail.
TEST(Stage2ConcurrencyTest, SkippingTlbInvalidationIsDetected) {
  StressVm vm({.invalidate_tlb = false});
  const HarnessResult result = vm.run(5000ms, 1);
  fmt::print("detected after {} checks: {}\n", result.checks, result.first_violation);
  EXPECT_FALSE(vm.writer_failed());
  EXPECT_GT(result.violations, 0u)
      << "stale translations went unnoticed in " << result.checks << " checks";
}

// Without NotifierHooks the map changes behind the subscribers' backs: read_retry accepts
// reads the writer overtook, and the interval check must notice. This shows it can fail.
TEST(Stage2ConcurrencyTest, ChangesThatSkipTheNotifiersAreDetected) {
  StressVm vm({.notify = false, .readers = 0, .interval_readers = 2});
  const HarnessResult result = vm.run(5000ms, 1);
  fmt::print("detected after {} accepted interval reads: {}\n", result.interval_passes,
             result.first_violation);
  EXPECT_FALSE(vm.writer_failed());
  EXPECT_GT(result.interval_violations, 0u)
      << "stale interval reads went unnoticed in " << result.interval_passes << " reads";
  EXPECT_EQ(result.interval_retries, 0u);  // no sequence ever moved
}

// The TLB's seqlock never returns a torn entry: fills of fixed (key → value) pairs race with
// invalidations and lookups on colliding indexes, and every hit must carry its key's value.
TEST(Stage2ConcurrencyTest, TlbLookupsNeverTear) {
  Stage2Tlb tlb(16);
  const auto host_of = [](uint16_t vmid, uint64_t page) {
    return reinterpret_cast<std::byte*>((uint64_t{vmid} << 40) | ((page + 1) << kPageShift));
  };
  const auto rights_of = [](uint64_t page) {
    return page % 2 ? Access::kRead : Access::kRead | Access::kWrite;
  };
  std::atomic<uint64_t> torn{0}, hits{0};
  std::atomic<bool> filling{true};
  std::latch start(1 + kReaders);
  const auto deadline = Clock::now() + 1000ms;
  {
    std::vector<std::jthread> threads;
    threads.emplace_back([&] {  // filler and invalidator
      start.arrive_and_wait();
      std::mt19937_64 random(1);
      for (int i = 0; i < 20000000 && Clock::now() < deadline; ++i) {
        const auto vmid = static_cast<uint16_t>(1 + random() % 2);
        const uint64_t page = random() % 64;
        if (random() % 8 == 0)
          tlb.invalidate_range(vmid, IpaRange{Ipa(page << kPageShift), 3 * kPageSize});
        else
          tlb.fill(vmid, Ipa(page << kPageShift), host_of(vmid, page), rights_of(page));
      }
      filling.store(false);
    });
    for (unsigned r = 0; r < kReaders; ++r) {
      threads.emplace_back([&, r] {
        start.arrive_and_wait();
        std::mt19937_64 random(10 + r);
        while (filling.load(std::memory_order_relaxed)) {
          const auto vmid = static_cast<uint16_t>(1 + random() % 2);
          const uint64_t page = random() % 64;
          const Access needed = random() % 2 ? Access::kRead : Access::kWrite;
          std::byte* hit = tlb.lookup(vmid, Ipa((page << kPageShift) | 0x10), needed);
          if (hit == nullptr)
            continue;
          hits.fetch_add(1, std::memory_order_relaxed);
          if (hit != host_of(vmid, page) + 0x10 || !access_allows(rights_of(page), needed))
            torn.fetch_add(1);
        }
      });
    }
  }
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_GT(hits.load(), 1000u);
}

// Counts callbacks and flags any that arrive after its subscription was dropped.
class ChurnOps : public IntervalOps {
 public:
  bool invalidate_range_start(const Change&) override {
    if (dead.load())
      late.fetch_add(1);
    starts.fetch_add(1);
    total_starts.fetch_add(1);
    return true;
  }
  void invalidate_range_end(const Change&) override {
    if (dead.load())
      late.fetch_add(1);
  }
  std::atomic<bool> dead{false};
  std::atomic<uint64_t> starts{0};
  static inline std::atomic<uint64_t> late{0};
  static inline std::atomic<uint64_t> total_starts{0};
};

// Subscriptions come and go on several threads while another thread invalidates: no callback
// reaches a subscription after unsubscribe() returned, sequences end even, nothing races.
TEST(Stage2ConcurrencyTest, SubscriptionChurnDuringInvalidations) {
  NotifierRegistry registry;
  ChurnOps::late = 0;
  std::atomic<uint64_t> invalidations{0}, churns{0};
  std::atomic<bool> odd_after_quiesce{false};
  std::latch start(1 + kReaders);
  const auto deadline = Clock::now() + 1000ms;
  {
    std::vector<std::jthread> threads;
    threads.emplace_back([&] {
      start.arrive_and_wait();
      std::mt19937_64 random(3);
      for (int i = 0; i < 200000 && Clock::now() < deadline; ++i) {
        const Change change{IpaRange{Ipa((random() % 16) << kPageShift), 4 * kPageSize},
                            ChangeKind::kUnmap, ChangeReason::kReclaim};
        if (registry.invalidate_range_start(change).ok())
          registry.invalidate_range_end(change);
        invalidations.fetch_add(1);
      }
    });
    for (unsigned t = 0; t < kReaders; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        std::mt19937_64 random(20 + t);
        // A few live subscriptions, replaced one at a time, so each lives across many
        // invalidations; dropped ops objects stay allocated so a late callback is detectable.
        std::array<std::optional<IntervalSubscription>, 4> live;
        std::array<ChurnOps*, 4> live_ops{};
        std::vector<std::unique_ptr<ChurnOps>> all_ops;
        for (int i = 0; i < 100000 && Clock::now() < deadline; ++i) {
          const size_t slot = random() % live.size();
          if (live[slot]) {
            live[slot]->reset();
            live_ops[slot]->dead.store(true);  // unsubscribe returned: no callback may follow
          }
          all_ops.push_back(std::make_unique<ChurnOps>());
          auto sub = registry.subscribe(IpaRange{Ipa((random() % 16) << kPageShift), kPageSize},
                                        all_ops.back().get());
          ASSERT_TRUE(sub.ok());
          const uint64_t sequence = sub->read_begin();
          (void)sub->read_retry(sequence);
          live[slot] = std::move(sub).value();
          live_ops[slot] = all_ops.back().get();
          churns.fetch_add(1);
          if (i % 8 == 0)
            std::this_thread::yield();  // let invalidations run against the live set
        }
        for (size_t slot = 0; slot < live.size(); ++slot) {
          if (live[slot]) {
            live[slot]->reset();
            live_ops[slot]->dead.store(true);
          }
        }
      });
    }
  }
  auto probe = std::move(registry.subscribe(IpaRange{Ipa(0), 64 * kPageSize}, nullptr)).value();
  odd_after_quiesce = probe.sequence() % 2 != 0;
  EXPECT_EQ(ChurnOps::late.load(), 0u);
  EXPECT_FALSE(odd_after_quiesce.load());
  EXPECT_GT(invalidations.load(), 100u);
  EXPECT_GT(churns.load(), 100u);
  EXPECT_GT(ChurnOps::total_starts.load(), 0u) << "no callback reached a churned subscription";
  EXPECT_EQ(registry.stats().subscriptions, 1u);
}

}  // namespace
}  // namespace hvmm::stage2
