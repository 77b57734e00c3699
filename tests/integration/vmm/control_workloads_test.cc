// Integration tests of the control channel's workload ops under KVM: the bundled guest kernel
// runs in this process and the test drives it through Machine::control_channel(). A held mix
// workload (hvmm/base/pattern_mix.h) verifies with the checksum the host computes from the
// header, a range of it is rewritten for a while (kWorkloadRewrite) and still verifies, and
// bad rewrites get their documented statuses. Nothing here asserts a time (nested KVM is
// slow).
#include <gtest/gtest.h>

#include <chrono>

#include "guest_kernel_vm.h"
#include "hvmm/base/pattern_mix.h"
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
using testing::TempPath;

constexpr uint64_t kMixBytes = 16 * kMiB;
constexpr uint64_t kMixPages = kMixBytes / kPageSize;
constexpr uint64_t kSeed = 9;
constexpr seconds kBootTimeout{90};
constexpr seconds kWorkloadTimeout{120};
constexpr seconds kRequestTimeout{30};

#define HVMM_SKIP_WITHOUT_GUEST_KERNEL()                                       \
  do {                                                                         \
    HVMM_SKIP_WITHOUT_KVM();                                                   \
    std::string why = ::hvmm::vmm::testing::guest_kernel_unavailable_reason(); \
    if (!why.empty()) {                                                        \
      GTEST_SKIP() << why;                                                     \
    }                                                                          \
  } while (false)

// The checksum the guest reports for `pages` pages of the mix of `seed`: every word of the
// header's mix folded in page order (FNV-1a over 64-bit words, as the pattern check).
uint64_t mix_checksum(uint64_t seed, uint64_t pages) {
  uint64_t checksum = 0xcbf29ce484222325ull;
  for (uint64_t page = 0; page < pages; ++page)
    for (uint64_t i = 0; i < pattern::kPageWords; ++i)
      checksum = (checksum ^ pattern::mix_word(seed, page, i)) * 0x100000001b3ull;
  return checksum;
}

// A booted guest kernel (it answered a ping), its console kept in a temporary file.
struct ControlWorkloads : ::testing::Test {
  void SetUp() override {
    HVMM_SKIP_WITHOUT_GUEST_KERNEL();
    GuestKernelVmOptions options;
    options.console_log = console.path;
    auto started = GuestKernelVm::start(options);
    ASSERT_TRUE(started.ok()) << started.error().message;
    vm = std::move(*started);
    auto pinged = vm->ping(kBootTimeout);
    ASSERT_TRUE(pinged.ok()) << pinged.error().message << "\nconsole:\n" << console_text();
  }
  // Send `request` and return the response whatever its status (the channel must answer).
  ControlResponse call(const ControlRequest& request, seconds timeout = kRequestTimeout) {
    auto response =
        vm->machine().control_channel()->call(request, std::chrono::steady_clock::now() + timeout);
    EXPECT_TRUE(response.ok()) << response.error().message << "\nconsole:\n" << console_text();
    return response ? *response : ControlResponse{};
  }
  // Start a held mix workload of kMixBytes.
  ControlResponse start_mix() {
    ControlRequest request{};
    request.op = Op::kWorkloadStart;
    request.args.workload_start = {control::WorkloadKind::kTouchMix, control::kWorkloadHold,
                                   kMixBytes, kSeed};
    return call(request, kWorkloadTimeout);
  }
  ControlResponse verify(uint32_t workload) {
    ControlRequest request{};
    request.op = Op::kWorkloadVerify;
    request.args.workload_id = {workload};
    return call(request, kWorkloadTimeout);
  }
  ControlResponse rewrite(uint32_t workload, uint64_t first_page, uint64_t pages,
                          uint32_t duration_ms, uint32_t flags = 0) {
    ControlRequest request{};
    request.op = Op::kWorkloadRewrite;
    request.args.workload_rewrite = {workload, flags, first_page, pages, duration_ms, 0};
    return call(request, kWorkloadTimeout);
  }
  std::string console_text() { return testing::slurp(console.path); }

  TempPath console{"control-workloads-console"};
  std::unique_ptr<GuestKernelVm> vm;
};

// The host's mix checksum differs from the plain pattern's (the header is really used).
TEST(ControlWorkloadsMix, HostChecksumIsTheMixNotThePattern) {
  EXPECT_NE(mix_checksum(kSeed, kMixPages), testing::pattern_checksum(kSeed, kMixPages));
  EXPECT_NE(mix_checksum(kSeed, kMixPages), mix_checksum(kSeed + 1, kMixPages));
}

// A held mix workload verifies with the header's checksum; 200 ms of rewriting a range
// (and a read-only pass) leaves it verifying the same; a range past its end is
// kBadArguments and an unknown id kNoSuchWorkload.
TEST_F(ControlWorkloads, MixHeldRewriteKeepsItsContents) {
  const uint64_t expected = mix_checksum(kSeed, kMixPages);
  ControlResponse started = start_mix();
  ASSERT_EQ(started.status, Status::kOk) << console_text();
  const uint32_t id = started.result.workload_start.workload;
  ASSERT_NE(id, 0u);
  EXPECT_EQ(started.result.workload_start.pages, kMixPages);
  EXPECT_EQ(started.result.workload_start.checksum, expected);

  ControlResponse first = verify(id);
  EXPECT_EQ(first.status, Status::kOk);
  EXPECT_EQ(first.result.workload_verify.pages, kMixPages);
  EXPECT_EQ(first.result.workload_verify.mismatched_pages, 0u);
  EXPECT_EQ(first.result.workload_verify.checksum, expected);

  ControlResponse rewritten = rewrite(id, 100, 1000, 200);
  EXPECT_EQ(rewritten.status, Status::kOk) << console_text();
  const control::WorkloadRewriteResult& w = rewritten.result.workload_rewrite;
  EXPECT_GE(w.rounds, 1u);
  EXPECT_EQ(w.pages, w.rounds * 1000);
  EXPECT_GE(w.duration_ns, 199'000'000u);  // it ran until the deadline (ns rounded down)
  ControlResponse reread = rewrite(id, 0, kMixPages, 50, control::kRewriteReadOnly);
  EXPECT_EQ(reread.status, Status::kOk);
  EXPECT_GE(reread.result.workload_rewrite.rounds, 1u);

  ControlResponse second = verify(id);
  EXPECT_EQ(second.status, Status::kOk);
  EXPECT_EQ(second.result.workload_verify.mismatched_pages, 0u);
  EXPECT_EQ(second.result.workload_verify.checksum, expected);

  EXPECT_EQ(rewrite(id, kMixPages - 10, 11, 10).status, Status::kBadArguments);
  EXPECT_EQ(rewrite(id, kMixPages, 1, 10).status, Status::kBadArguments);
  EXPECT_EQ(rewrite(id, 0, 0, 10).status, Status::kBadArguments);
  EXPECT_EQ(rewrite(id + 100, 0, 1, 10).status, Status::kNoSuchWorkload);

  auto status = vm->shut_down(0, kRequestTimeout);
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(*status, 0) << console_text();
}

}  // namespace
}  // namespace hvmm::vmm
