// End-to-end: TLB shootdowns of both stages through the daemon. Stage 1: the guest kernel
// flushes on every vCPU and the call returns a latency. Stage 2: KVM's cached translations of
// guest RAM are dropped (its page counts fall), the guest's memory is intact, and its next
// accesses are fresh translations (KVM's fixed faults grow).
#include <gtest/gtest.h>

#include "daemon_test.h"
#include "guest_vms.h"

namespace hvmm::e2e {
namespace {

using std::chrono::seconds;

class Tlb : public DaemonTest {
 protected:
  // A held workload of `bytes` in `name`: its id.
  uint32_t hold_workload(const std::string& name, uint64_t bytes, uint64_t seed) {
    v1::StartWorkloadRequest workload;
    workload.set_name(name);
    workload.set_kind(v1::WORKLOAD_KIND_TOUCH_SEQUENTIAL);
    workload.set_bytes(bytes);
    workload.set_seed(seed);
    workload.set_hold(true);
    auto held = call(*api().guest, &v1::GuestService::Stub::StartWorkload, workload, seconds(150));
    EXPECT_TRUE(held.ok()) << describe(held.status);
    EXPECT_NE(held.response.workload(), 0u);
    return held.response.workload();
  }
};

// KVM's stage-2 pages of every size, in 4 KiB pages.
uint64_t kvm_pages(const v1::KvmMmuStats& stats) {
  return stats.pages_4k() + 512 * stats.pages_2m() + 512 * 512 * stats.pages_1g();
}

// A stage-1 shootdown of everything, and of a held workload's address space, on a 2-vCPU
// guest: each returns a latency and says both vCPUs flushed.
TEST_F(Tlb, Stage1ShootdownReturnsALatency) {
  v1::VmSpec spec = guest_spec(128 * kMiB);
  spec.set_vcpus(2);
  auto vm = start_guest_vm(api(), "stage1", spec);
  ASSERT_TRUE(vm.ok()) << vm.error().message;
  const uint32_t workload = hold_workload("stage1", 2 * kMiB, 11);

  v1::TlbShootdownRequest request;
  request.set_name("stage1");
  request.set_stage(v1::TLB_STAGE_1);
  request.mutable_stage1()->set_scope(v1::STAGE1_SCOPE_KERNEL_ALL);
  auto all = call(*api().tlb, &v1::TlbService::Stub::Shootdown, request, seconds(120));
  ASSERT_TRUE(all.ok()) << describe(all.status);
  EXPECT_EQ(all.response.stage(), v1::TLB_STAGE_1);
  EXPECT_GT(all.response.latency_ns(), 0u);
  ASSERT_TRUE(all.response.has_stage1());
  EXPECT_EQ(all.response.stage1().cpus(), 2u);
  EXPECT_FALSE(all.response.stage1().method().empty());

  request.mutable_stage1()->set_scope(v1::STAGE1_SCOPE_ADDRESS_SPACE);
  request.mutable_stage1()->set_workload(workload);
  auto space = call(*api().tlb, &v1::TlbService::Stub::Shootdown, request, seconds(120));
  ASSERT_TRUE(space.ok()) << describe(space.status);
  EXPECT_GT(space.response.latency_ns(), 0u);
  ASSERT_TRUE(space.response.has_stage1());
  EXPECT_GE(space.response.stage1().cpus(), 1u);
  std::cout << "stage-1 shootdown (nested KVM is emulated): all " << all.response.latency_ns()
            << " ns (" << all.response.stage1().method() << "), address space "
            << space.response.latency_ns() << " ns (" << space.response.stage1().method() << ")\n";
}

// A stage-2 shootdown of all of guest RAM after a 16 MiB workload: a latency, a mechanism,
// KVM's page count lower after than before, the workload verifies intact, and re-reading it
// took KVM faults that installed translations again.
TEST_F(Tlb, Stage2ShootdownDropsKvmsTranslationsAndKeepsContents) {
  auto vm = start_guest_vm(api(), "stage2", guest_spec(128 * kMiB));
  ASSERT_TRUE(vm.ok()) << vm.error().message;
  constexpr uint64_t kBytes = 16 * kMiB;
  const uint32_t workload = hold_workload("stage2", kBytes, 5);

  v1::TlbShootdownRequest request;
  request.set_name("stage2");
  request.set_stage(v1::TLB_STAGE_2);
  auto shot = call(*api().tlb, &v1::TlbService::Stub::Shootdown, request, seconds(120));
  ASSERT_TRUE(shot.ok()) << describe(shot.status);
  EXPECT_EQ(shot.response.stage(), v1::TLB_STAGE_2);
  EXPECT_GT(shot.response.latency_ns(), 0u);
  ASSERT_TRUE(shot.response.has_stage2());
  const v1::Stage2ShootdownResult& result = shot.response.stage2();
  EXPECT_FALSE(result.mechanism().empty());
  EXPECT_EQ(result.range().size(), 128 * kMiB) << "an empty range means all of guest RAM";
  EXPECT_GE(result.pages(), kBytes / kPage);
  ASSERT_GT(kvm_pages(result.kvm_before()), 0u) << "KVM reported no mapped pages (binary stats?)";
  EXPECT_LT(kvm_pages(result.kvm_after()), kvm_pages(result.kvm_before()));
  EXPECT_GE(kvm_pages(result.kvm_before()) - kvm_pages(result.kvm_after()), kBytes / kPage / 2)
      << "most of the workload's translations were dropped";

  v1::WorkloadRequest verify;
  verify.set_name("stage2");
  verify.set_workload(workload);
  auto verified = call(*api().guest, &v1::GuestService::Stub::VerifyWorkload, verify, seconds(150));
  ASSERT_TRUE(verified.ok()) << describe(verified.status);
  EXPECT_EQ(verified.response.pages(), kBytes / kPage);
  EXPECT_EQ(verified.response.mismatched_pages(), 0u) << "a shootdown must not lose contents";

  auto stats = memory_stats(api(), "stage2");
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_GE(stats->kvm().pf_fixed(), result.kvm_after().pf_fixed() + kBytes / kPage / 512)
      << "re-reading the workload took fresh translations";
  EXPECT_GT(kvm_pages(stats->kvm()), kvm_pages(result.kvm_after()));
  std::cout << "stage-2 shootdown (nested KVM is emulated): " << shot.response.latency_ns()
            << " ns by " << result.mechanism() << "; KVM pages " << kvm_pages(result.kvm_before())
            << " -> " << kvm_pages(result.kvm_after()) << " -> " << kvm_pages(stats->kvm())
            << " after the verify; pf_fixed " << result.kvm_after().pf_fixed() << " -> "
            << stats->kvm().pf_fixed() << "\n";
}

}  // namespace
}  // namespace hvmm::e2e
