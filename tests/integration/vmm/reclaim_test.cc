// Integration tests of reclaim under KVM (vmm/reclaim): the bundled guest kernel runs in this
// process with a reclaim policy, the test drives it through the control channel (held mix
// workloads of hvmm/base/pattern_mix.h, rewrites, verifies) and reads the Machine's reclaim
// figures and this process's VmRSS. An idle guest gives back everything but its
// incompressible pages and re-reads its data intact; a guest writer racing repeated reclaim
// passes loses no write; `hvmm run --reclaim --stats` reports the reclaim sections.
// Everything is slow under nested KVM: deadlines are generous and nothing asserts a time.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <iostream>

#include "guest_kernel_vm.h"
#include "hvmm/vmm/reclaim/reclaim_engine.h"
#include "hvmm/vmm/reclaim/reclaim_policy.h"
#include "reclaim_vm.h"
#include "run_hvmm.h"

namespace hvmm::vmm {
namespace {

using control::ControlRequest;
using control::ControlResponse;
using control::Op;
using control::Status;
using std::chrono::seconds;
using testing::GuestKernelVm;
using testing::GuestKernelVmOptions;
using testing::kMiB;
using testing::MixCensus;
using testing::TempPath;

constexpr uint64_t kGuestMemory = 256 * kMiB;
constexpr seconds kBootTimeout{90};
constexpr seconds kWorkloadTimeout{120};
constexpr seconds kRequestTimeout{30};
constexpr seconds kSettleTimeout{90};
// Epochs without a change of reclaimed_now that count as settled.
constexpr uint64_t kQuietEpochs = 6;

#define HVMM_SKIP_WITHOUT_GUEST_KERNEL()                                       \
  do {                                                                         \
    HVMM_SKIP_WITHOUT_KVM();                                                   \
    std::string why = ::hvmm::vmm::testing::guest_kernel_unavailable_reason(); \
    if (!why.empty()) {                                                        \
      GTEST_SKIP() << why;                                                     \
    }                                                                          \
  } while (false)

// A policy of the --reclaim syntax (the test fails on a syntax error).
ReclaimPolicy policy_of(const char* text) {
  auto policy = parse_reclaim_policy(text);
  EXPECT_TRUE(policy.ok()) << policy.error().message;
  return policy ? *policy : ReclaimPolicy{};
}

// A guest kernel booted with a reclaim policy (it answered a ping), its console in a file.
struct ReclaimTest : ::testing::Test {
  void boot(const ReclaimPolicy& policy) {
    GuestKernelVmOptions options;
    options.memory = kGuestMemory;
    options.console_log = console.path;
    options.reclaim = policy;
    auto started = GuestKernelVm::start(options);
    ASSERT_TRUE(started.ok()) << started.error().message;
    vm = std::move(*started);
    auto pinged = vm->ping(kBootTimeout);
    ASSERT_TRUE(pinged.ok()) << pinged.error().message << "\nconsole:\n" << console_text();
    ASSERT_NE(vm->machine().reclaim_engine(), nullptr);
  }
  // Send `request`; an answer other than kOk fails the test (and returns a zeroed response).
  ControlResponse call(const ControlRequest& request, seconds timeout) {
    auto response = vm->call(request, timeout);
    EXPECT_TRUE(response.ok()) << response.error().message << "\nconsole:\n" << console_text();
    return response ? *response : ControlResponse{};
  }
  // A held mix workload of `bytes` with `seed`.
  control::WorkloadStartResult start_mix(uint64_t bytes, uint64_t seed) {
    ControlRequest request{};
    request.op = Op::kWorkloadStart;
    request.args.workload_start = {control::WorkloadKind::kTouchMix, control::kWorkloadHold, bytes,
                                   seed};
    return call(request, kWorkloadTimeout).result.workload_start;
  }
  control::WorkloadVerifyResult verify(uint32_t workload) {
    ControlRequest request{};
    request.op = Op::kWorkloadVerify;
    request.args.workload_id = {workload};
    return call(request, kWorkloadTimeout).result.workload_verify;
  }
  // Rewrite (or with kRewriteReadOnly read) pages [first, first + pages) for `ms`.
  control::WorkloadRewriteResult rewrite(uint32_t workload, uint64_t first, uint64_t pages,
                                         uint32_t ms, uint32_t flags = 0) {
    ControlRequest request{};
    request.op = Op::kWorkloadRewrite;
    request.args.workload_rewrite = {workload, flags, first, pages, ms, 0};
    return call(request, kWorkloadTimeout).result.workload_rewrite;
  }
  ReclaimFigures figures() {
    std::optional<ReclaimFigures> now = vm->machine().reclaim_figures();
    EXPECT_TRUE(now.has_value()) << "the machine runs without reclaim";
    return now.value_or(ReclaimFigures{});
  }
  // Shut the guest down with status 0 and expect the VM to end with it.
  void shut_down() {
    auto status = vm->shut_down(0, kRequestTimeout);
    ASSERT_TRUE(status.ok()) << status.error().message;
    EXPECT_EQ(*status, 0) << console_text();
  }
  std::string console_text() { return testing::slurp(console.path); }

  TempPath console{"reclaim-console"};
  std::unique_ptr<GuestKernelVm> vm;
};

constexpr uint64_t kIdleBytes = 192 * kMiB;
constexpr uint64_t kIdlePages = kIdleBytes / kPageSize;
constexpr uint64_t kIdleSeed = 19;
// Incompressible pages beyond the workload's random ones that the allowance includes (guest
// kernel pages that happen not to compress): 1 MiB.
constexpr uint64_t kOtherIncompressiblePages = 256;

// Must-show: a 192 MiB mix written by a ring-3 workload, then idle: reclaim brings VmRSS to
// at most 10% of the touched memory plus the incompressible part above the RSS after boot;
// the workload re-reads everything and its checksum is the host's; every reclaimed page of
// the workload came back through a refault.
TEST_F(ReclaimTest, IdleGuestKeepsOnlyTheIncompressiblePart) {
  HVMM_SKIP_WITHOUT_GUEST_KERNEL();
  ReclaimPolicy policy = policy_of("period=250ms,cold=2,rate=1G");
  // The promotion budget (refaults per minute, 0.2% of the footprint) is lifted: with a 0.5 s
  // cold period, pages of the kernel's boot and of the workload itself leave before their
  // next touch (the workload reads its pages back after writing them all), and those
  // refaults would back reclaim off for a minute. This test is about the idle guest.
  policy.promotion_budget = kNoPromotionBudget;
  ASSERT_NO_FATAL_FAILURE(boot(policy));
  const uint64_t expected = testing::mix_checksum(kIdleSeed, kIdlePages);
  const MixCensus census = testing::mix_census(kIdleSeed, kIdlePages);
  const uint64_t baseline = testing::vm_rss();

  const control::WorkloadStartResult started = start_mix(kIdleBytes, kIdleSeed);
  ASSERT_NE(started.workload, 0u) << console_text();
  EXPECT_EQ(started.pages, kIdlePages);
  EXPECT_EQ(started.checksum, expected);
  const uint64_t touched = testing::vm_rss();

  auto settled = testing::wait_for_reclaim_to_settle(
      vm->machine(), kQuietEpochs, std::chrono::steady_clock::now() + kSettleTimeout);
  ASSERT_TRUE(settled.ok()) << settled.error().message;
  // Stop the engine so the pages the verify brings back stay back: the figures after it are
  // then exactly what the re-read did.
  vm->machine().reclaim_engine()->stop();
  const uint64_t reclaimed_rss = testing::vm_rss();
  const ReclaimFigures before = figures();

  // The incompressible part: the workload's random pages (the pool refused every one of them,
  // checked below) and a few of the kernel's. Not the refusals counter itself: it counts
  // offers, and a kept page is offered again whenever the dirty log reports it written (under
  // nested KVM an idle run counted about twice the random pages).
  const uint64_t incompressible = (census.random + kOtherIncompressiblePages) * kPageSize;
  const uint64_t allowance = kIdleBytes / 10 + incompressible;
  const uint64_t grown = reclaimed_rss - std::min(reclaimed_rss, baseline);
  std::cout << "VmRSS after boot " << baseline / kMiB << " MiB, after the workload "
            << touched / kMiB << " MiB, reclaimed " << reclaimed_rss / kMiB << " MiB (+"
            << grown / kMiB << " MiB, allowed " << allowance / kMiB
            << " MiB); the mix: " << census.zero << " zero, " << census.text << " text, "
            << census.random << " random pages\n"
            << "reclaim settled: " << testing::describe(before) << "\n";
  EXPECT_LE(grown, allowance);
  EXPECT_GE(before.stats.incompressible_pages, census.random);
  EXPECT_GE(before.stats.reclaimed_now, census.compressible());
  EXPECT_GE(before.pool.zero_pages, census.zero);
  EXPECT_GT(before.pool.compression_ratio(), 2.0);
  EXPECT_EQ(before.stats.errors, 0u);

  const control::WorkloadVerifyResult verified = verify(started.workload);
  EXPECT_EQ(verified.pages, kIdlePages);
  EXPECT_EQ(verified.mismatched_pages, 0u);
  EXPECT_EQ(verified.checksum, expected);
  const ReclaimFigures after = figures();
  std::cout << "VmRSS after the re-read " << testing::vm_rss() / kMiB
            << " MiB; reclaim: " << testing::describe(after) << "\n";
  EXPECT_GE(after.stats.refaults - before.stats.refaults, census.compressible());
  EXPECT_LE(after.stats.reclaimed_now + census.compressible(), before.stats.reclaimed_now);
  EXPECT_EQ(after.stats.reclaimed_pages, before.stats.reclaimed_pages);  // the engine stopped
  EXPECT_GT(after.stats.refault_latency.samples, 0u);
  EXPECT_EQ(after.pool.load_errors, 0u);
  shut_down();
}

constexpr uint64_t kWriterBytes = 32 * kMiB;
constexpr uint64_t kWriterPages = kWriterBytes / kPageSize;
constexpr uint64_t kWriterSeed = 23;
constexpr uint64_t kChunks = 8;
constexpr uint64_t kChunkPages = kWriterPages / kChunks;
constexpr uint64_t kWriterRounds = 16;

// Must-show: a guest writer during repeated reclaim passes. With cold=1 and a 100 ms period a
// chunk goes cold while others are written; the writer comes back to it in a shuffled order
// (meeting reclaimed pages and windows in progress), with read-only passes between. Every word
// is checked afterwards against the host's checksum; pages were reclaimed more than once.
TEST_F(ReclaimTest, ConcurrentWriterLosesNoWrite) {
  HVMM_SKIP_WITHOUT_GUEST_KERNEL();
  ReclaimPolicy policy = policy_of("period=100ms,cold=1,rate=1G");
  // The promotion budget (refaults per minute as a share of the footprint, at most 100% in the
  // syntax) would stop reclaim after the first chunks' refaults; this test wants every pass.
  policy.promotion_budget = kNoPromotionBudget;
  ASSERT_NO_FATAL_FAILURE(boot(policy));
  const uint64_t expected = testing::mix_checksum(kWriterSeed, kWriterPages);
  const MixCensus census = testing::mix_census(kWriterSeed, kWriterPages);
  const control::WorkloadStartResult started = start_mix(kWriterBytes, kWriterSeed);
  ASSERT_NE(started.workload, 0u) << console_text();
  EXPECT_EQ(started.checksum, expected);

  const auto first_pass = std::chrono::steady_clock::now() + kSettleTimeout;
  while (figures().stats.reclaimed_pages == 0 && std::chrono::steady_clock::now() < first_pass)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_GT(figures().stats.reclaimed_pages, 0u) << "no reclaim pass before the writer";
  uint64_t chunk = 0;
  for (uint64_t round = 0; round < kWriterRounds; ++round) {
    chunk = (chunk * 5 + 3) % kChunks;  // a full-period LCG: every chunk, shuffled
    const uint32_t ms = static_cast<uint32_t>(150 + 100 * (round % 3));
    const control::WorkloadRewriteResult written =
        round % 4 == 3 ? rewrite(started.workload, 0, kWriterPages, ms, control::kRewriteReadOnly)
                       : rewrite(started.workload, chunk * kChunkPages, kChunkPages, ms);
    ASSERT_GE(written.rounds, 1u) << "round " << round << "\nconsole:\n" << console_text();
  }

  const control::WorkloadVerifyResult verified = verify(started.workload);
  EXPECT_EQ(verified.pages, kWriterPages);
  EXPECT_EQ(verified.mismatched_pages, 0u);
  EXPECT_EQ(verified.checksum, expected);
  const ReclaimFigures after = figures();
  std::cout << "concurrent writer: " << testing::describe(after) << "\n";
  EXPECT_GT(after.stats.reclaimed_pages, census.compressible());  // passes repeated
  EXPECT_GT(after.stats.refaults, 0u);
  EXPECT_EQ(after.stats.errors, 0u);
  EXPECT_EQ(after.pool.load_errors, 0u);
  shut_down();
}

// The number after `"key":` in `json`, searched from the start of `"section":{`; -1 if absent.
int64_t json_number(const std::string& json, const std::string& section, const std::string& key) {
  const size_t from = json.find("\"" + section + "\":{");
  const size_t at = from == std::string::npos ? from : json.find("\"" + key + "\":", from);
  if (at == std::string::npos)
    return -1;
  return std::strtoll(json.c_str() + at + key.size() + 3, nullptr, 10);
}

// The sum of the working set's bins ("pages" of each; the section is the report's last).
int64_t working_set_pages(const std::string& json) {
  const std::string key = "\"pages\":";
  int64_t sum = 0;
  size_t at = json.find("\"working_set\":{");
  while (at != std::string::npos && (at = json.find(key, at)) != std::string::npos) {
    at += key.size();
    sum += std::strtoll(json.c_str() + at, nullptr, 10);
  }
  return sum;
}

// `hvmm run --reclaim ... --stats FILE` with the bundled kernel: a 32 MiB mix workload, then
// 5 s idle; the --stats JSON has the reclaim (the policy spelled out, pages reclaimed), pool
// and working-set sections.
TEST(ReclaimCli, StatsFileHasTheReclaimSections) {
  HVMM_SKIP_WITHOUT_KVM();
  if (HVMM_BUNDLED_KERNEL_IS_HELLO)
    GTEST_SKIP() << "the bundled kernel is the hello guest (no guest kernel in this build)";
  TempPath stats("reclaim-stats");
  testing::RunResult run =
      testing::run_hvmm({"run", "--memory", "128M", "--reclaim", "period=200ms,cold=1,rate=1G",
                         "--stats", stats.path, "--cmdline", "workload=pattern_mix:32M idle=5"},
                        seconds(150));
  EXPECT_FALSE(run.timed_out);
  EXPECT_EQ(run.status, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("workload pattern_mix: ok 8192 pages, 0 mismatched"), std::string::npos)
      << run.out;
  const std::string json = testing::slurp(stats.path);
  std::cout << "--stats: " << json;
  EXPECT_NE(json.find("\"reclaim\":{\"policy\":\""), std::string::npos) << json;
  EXPECT_NE(json.find("period=200ms"), std::string::npos) << json;
  EXPECT_NE(json.find("\"pool\":{\"codec\":\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"working_set\":{\"epoch\":"), std::string::npos) << json;
  EXPECT_GT(json_number(json, "reclaim", "epochs"), 0) << json;
  EXPECT_GT(json_number(json, "reclaim", "reclaimed_pages"), 0) << json;
  EXPECT_GT(json_number(json, "pool", "entries"), 0) << json;
  EXPECT_GT(json_number(json, "pool", "zero_pages"), 0) << json;
  EXPECT_GT(working_set_pages(json), 0) << json;
}

}  // namespace
}  // namespace hvmm::vmm
