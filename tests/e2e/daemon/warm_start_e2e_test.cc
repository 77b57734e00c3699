// End-to-end: warm start under the real hvmmd and hvmm-vm. With `warm-pool = "128M:1"` the
// daemon keeps one prepared VM process (KVM VM, irqchip, RAM and memslots made); a VM of
// that size starts from it and boots the bundled guest kernel like a cold one of another
// size started beside it: both answer the guest requests, report their memory, and stop
// with the guest's status; the pool refills.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "daemon_test.h"
#include "guest_vms.h"

namespace hvmm::e2e {
namespace {

using std::chrono::seconds;

class WarmStart : public DaemonTest {
 protected:
  HvmmdOptions daemon_options() const override {
    HvmmdOptions options;
    options.config["warm-pool"] = "128M:1";
    return options;
  }

  // GetDaemonInfo's pool once `done` holds for it (polled, generous: nested KVM is slow).
  Result<v1::WarmPoolStatus> wait_for_pool(
      const std::function<bool(const v1::WarmPoolStatus&)>& done) {
    const auto deadline = std::chrono::steady_clock::now() + seconds(180);
    v1::WarmPoolStatus last;
    while (std::chrono::steady_clock::now() < deadline) {
      auto info =
          call(*api().daemon, &v1::DaemonService::Stub::GetDaemonInfo, v1::GetDaemonInfoRequest{});
      if (!info.ok()) {
        return status_error("GetDaemonInfo", info.status);
      }
      if (info.response.warm_pools_size() != 1) {
        return make_error(ErrorCode::kInternal, "GetDaemonInfo has {} warm pools, not 1",
                          info.response.warm_pools_size());
      }
      last = info.response.warm_pools(0);
      if (done(last)) {
        return last;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return make_error(ErrorCode::kUnavailable, "the warm pool stayed at {}",
                      last.ShortDebugString());
  }

  // The VM once its first run is reported.
  Result<v1::Vm> wait_first_run(const std::string& name) {
    return wait_for_vm(
        api(), name, [](const v1::Vm& vm) { return vm.first_run_unix_ns() != 0; }, seconds(60));
  }

  void stop_vm(const std::string& name) {
    v1::StopVmRequest stop;
    stop.set_name(name);
    stop.set_grace_ms(60000);
    auto stopped = call(*api().vm, &v1::VmService::Stub::Stop, stop, seconds(120));
    ASSERT_TRUE(stopped.ok()) << describe(stopped.status);
    auto ended = wait_for_vm(
        api(), name, [](const v1::Vm& vm) { return vm.state() == v1::VM_STATE_STOPPED; },
        seconds(120));
    ASSERT_TRUE(ended.ok()) << ended.error().message;
    EXPECT_TRUE(ended->has_exit()) << ended->DebugString();
    EXPECT_FALSE(ended->exit().has_signal()) << ended->DebugString();
  }
};

// A warm VM and a cold one boot the bundled guest kernel, answer the guest, report their
// memory and first run, and stop cleanly; the pool is refilled after the take.
TEST_F(WarmStart, WarmVmBootsTheBundledKernelLikeAColdOne) {
  auto ready = wait_for_pool([](const v1::WarmPoolStatus& pool) { return pool.ready() == 1; });
  ASSERT_TRUE(ready.ok()) << ready.error().message;
  EXPECT_EQ(ready->memory_bytes(), 128 * kMiB);
  EXPECT_GT(ready->rss_bytes(), 0u);

  auto warm = start_guest_vm(api(), "warm", guest_spec(128 * kMiB));
  ASSERT_TRUE(warm.ok()) << warm.error().message;
  auto cold = start_guest_vm(api(), "cold", guest_spec(64 * kMiB));
  ASSERT_TRUE(cold.ok()) << cold.error().message;
  EXPECT_TRUE(warm->warm_start()) << warm->DebugString();
  EXPECT_FALSE(cold->warm_start()) << cold->DebugString();
  EXPECT_NE(warm->vmid(), cold->vmid());

  for (const char* name : {"warm", "cold"}) {
    auto ran = wait_first_run(name);
    ASSERT_TRUE(ran.ok()) << name << ": " << ran.error().message;
    EXPECT_GE(ran->first_run_unix_ns(), ran->start_requested_unix_ns()) << ran->DebugString();
    auto stats = memory_stats(api(), name);
    ASSERT_TRUE(stats.ok()) << name << ": " << stats.error().message;
    EXPECT_EQ(stats->memory_bytes(), std::string(name) == "warm" ? 128 * kMiB : 64 * kMiB);
    EXPECT_GT(stats->host().rss_bytes(), 0u) << name;
    EXPECT_GT(stats->host().memfd_allocated_bytes(), 0u) << name << ": the guest touched its RAM";
  }
  // The warm VM's stage-2 map is the whole of its RAM, resident, as a cold one's is.
  auto mappings = dump_stage2_all(api(), "warm", 1000);
  ASSERT_TRUE(mappings.ok()) << mappings.error().message;
  uint64_t mapped = 0;
  for (const v1::Mapping& mapping : *mappings) {
    mapped += mapping.range().size();
  }
  EXPECT_EQ(mapped, 128 * kMiB);

  auto refilled = wait_for_pool(
      [](const v1::WarmPoolStatus& pool) { return pool.ready() == 1 && pool.taken() == 1; });
  ASSERT_TRUE(refilled.ok()) << refilled.error().message;
  EXPECT_EQ(refilled->missed(), 0u);
  stop_vm("warm");
  stop_vm("cold");
}

}  // namespace
}  // namespace hvmm::e2e
