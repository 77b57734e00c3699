// What the VmProcess tests share: the Launch of a guest-kernel VM, request builders, the
// checks of "not implemented yet" answers, and the whole life of a VM process (boot,
// stats, balloon with its notifier events, dump pages, shootdowns, reclaim with a swap file,
// subscriptions, bad requests, shutdown) that the functional and the strace tests both run.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "run_hvmm.h"
#include "vm_process_harness.h"

namespace hvmm::testing {

inline constexpr uint64_t kMiB = uint64_t{1} << 20;
// Nested KVM emulates the guest kernel's ring 0 instruction by instruction: generous limits.
inline constexpr Millis kStartTimeout{120000};
inline constexpr Millis kBootTimeout{120000};
inline constexpr Millis kBalloonWait{120000};
inline constexpr Millis kRequestTimeout{60000};
inline constexpr Millis kExitTimeout{60000};
// google.rpc.Code values the tests check.
inline constexpr int kOk = 0;
inline constexpr int kInvalidArgument = 3;
inline constexpr int kFailedPrecondition = 9;
inline constexpr int kInternal = 13;
inline constexpr int kUnavailable = 14;

// Why a guest-kernel VM process cannot run here ("" when it can).
inline std::string vm_process_unavailable_reason() {
  if (std::string kvm = kvm_unavailable_reason(); !kvm.empty()) {
    return kvm;
  }
  if (HVMM_BUNDLED_KERNEL_IS_HELLO) {
    return "hvmm-vm bundles the hello test guest, not the guest kernel (HVMM_BUNDLE_GUEST_KERNEL)";
  }
  return "";
}

#define HVMM_SKIP_WITHOUT_VM_PROCESS()                                  \
  do {                                                                  \
    std::string why = ::hvmm::testing::vm_process_unavailable_reason(); \
    if (!why.empty()) {                                                 \
      GTEST_SKIP() << why;                                              \
    }                                                                   \
  } while (false)

// A Launch of the bundled guest kernel: balloon and control channel (the daemon's default),
// seccomp on.
inline supervisor::Launch guest_kernel_launch(const std::string& name, uint32_t vmid,
                                              uint64_t memory = 256 * kMiB) {
  supervisor::Launch launch;
  launch.set_name(name);
  launch.set_vmid(vmid);
  launch.set_vmid_generation(1);
  launch.mutable_spec()->set_memory_bytes(memory);
  launch.set_seccomp(true);
  return launch;
}

// One request of each kind the scenario sends.
inline supervisor::Request stats_request() {
  supervisor::Request request;
  request.mutable_get_memory_stats();
  return request;
}
inline supervisor::Request balloon_request(uint64_t target, uint32_t wait_ms) {
  supervisor::Request request;
  request.mutable_set_balloon_target()->set_target_bytes(target);
  request.mutable_set_balloon_target()->set_wait_ms(wait_ms);
  return request;
}
inline supervisor::Request dump_request(uint32_t page_size, const std::string& token = "") {
  supervisor::Request request;
  request.mutable_dump_stage2()->set_page_size(page_size);
  request.mutable_dump_stage2()->set_page_token(token);
  return request;
}
inline supervisor::Request stage1_request(hvmm::v1::Stage1Scope scope) {
  supervisor::Request request;
  request.mutable_tlb_shootdown()->set_stage(hvmm::v1::TLB_STAGE_1);
  request.mutable_tlb_shootdown()->mutable_stage1()->set_scope(scope);
  return request;
}
inline supervisor::Request shutdown_request(int status) {
  supervisor::Request request;
  request.mutable_shutdown()->set_exit_status(status);
  return request;
}
inline supervisor::Request forward_all_request() {
  supervisor::Request request;
  request.mutable_forward_notifier_events()->set_all(true);
  return request;
}
// A probe of guest RAM: the guest answers once its control service runs (a boot check).
inline supervisor::Request probe_request(uint64_t ipa) {
  supervisor::Request request;
  request.mutable_probe()->set_ipa(ipa);
  return request;
}

// True for an OK response; for a Machine control whose implementation has not landed yet
// (UNAVAILABLE "not implemented yet"), false with the reason recorded; anything else fails.
inline bool ok_or_not_yet(const supervisor::Response& response, const char* what) {
  if (response.code() == kUnavailable &&
      response.message().find("not implemented yet") != std::string::npos) {
    ::testing::Test::RecordProperty(what, "not implemented yet");
    std::printf("note: %s: %s\n", what, response.message().c_str());
    return false;
  }
  EXPECT_EQ(response.code(), kOk) << what << ": " << response.message();
  return response.code() == kOk;
}

// The started VM, from Launch to Started.
inline void launch_and_wait_started(VmProcessHarness& vm, const supervisor::Launch& launch) {
  ASSERT_TRUE(vm.started());
  ASSERT_TRUE(vm.launch(launch).ok());
  auto started = vm.wait_event(
      [](const supervisor::Event& e) { return e.has_started() || e.has_failed(); }, kStartTimeout);
  ASSERT_TRUE(started.ok()) << started.error().message << "\n" << vm.output();
  ASSERT_TRUE(started->has_started()) << started->failed().message() << "\n" << vm.output();
  if (!vm.wrapped()) {
    EXPECT_EQ(started->started().pid(), vm.pid());
  }
  EXPECT_NE(started->started().guest_cmdline().find("virtio_mmio.device="), std::string::npos);
}

// Wait until the guest kernel serves its control channel: a probe of RAM is answered (or
// refused as a request it does not know yet: it is served either way).
inline void wait_for_guest(VmProcessHarness& vm) {
  auto probed = vm.call(probe_request(0x1000), kBootTimeout);
  ASSERT_TRUE(probed.ok()) << probed.error().message << "\n" << vm.output();
  ASSERT_TRUE(probed->code() == kOk || probed->code() == kInternal) << probed->message() << "\n"
                                                                    << vm.output();
}

// Balloon to `target` with the notifier forwarded: the response reports it reached, and
// BALLOON invalidations arrive as START/END pairs with the same sequence.
inline void balloon_with_notifier_events(VmProcessHarness& vm, uint64_t target) {
  auto forwarded = vm.call(forward_all_request(), kRequestTimeout);
  ASSERT_TRUE(forwarded.ok()) << forwarded.error().message;
  ASSERT_EQ(forwarded->code(), kOk) << forwarded->message();
  const size_t before = vm.events().size();
  auto ballooned =
      vm.call(balloon_request(target, kBalloonWait.count()), kBalloonWait + kRequestTimeout);
  ASSERT_TRUE(ballooned.ok()) << ballooned.error().message << "\n" << vm.output();
  ASSERT_EQ(ballooned->code(), kOk) << ballooned->message();
  EXPECT_EQ(ballooned->set_balloon_target().balloon().actual_bytes(), target);
  EXPECT_GE(ballooned->set_balloon_target().balloon().inflated_pages(), target / 4096);
  auto start = vm.wait_event(
      [](const supervisor::Event& e) {
        return e.has_notifier() && e.notifier().reason() == hvmm::v1::CHANGE_REASON_BALLOON &&
               e.notifier().phase() == hvmm::v1::NOTIFIER_PHASE_START;
      },
      kRequestTimeout, before);
  ASSERT_TRUE(start.ok()) << start.error().message;
  const uint64_t sequence = start->notifier().sequence();
  EXPECT_GT(sequence, 0u);
  auto end = vm.wait_event(
      [sequence](const supervisor::Event& e) {
        return e.has_notifier() && e.notifier().sequence() == sequence &&
               e.notifier().phase() == hvmm::v1::NOTIFIER_PHASE_END;
      },
      kRequestTimeout, before);
  ASSERT_TRUE(end.ok()) << end.error().message;
  EXPECT_EQ(end->notifier().range().start(), start->notifier().range().start());
  EXPECT_EQ(end->notifier().range().size(), start->notifier().range().size());
}

// Two pages of a dump: the first has a token, the second starts where the first ended; a
// tampered token is refused naming page_token. The ballooned pages show in the dump.
inline void dump_two_pages(VmProcessHarness& vm) {
  auto first = vm.call(dump_request(2), kRequestTimeout);
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_EQ(first->code(), kOk) << first->message();
  const auto& page1 = first->dump_stage2();
  ASSERT_EQ(page1.dump().mappings_size(), 2);
  ASSERT_FALSE(page1.next_page_token().empty());
  EXPECT_GE(page1.dump().ipa_bits(), 32u);
  auto second = vm.call(dump_request(2, page1.next_page_token()), kRequestTimeout);
  ASSERT_TRUE(second.ok()) << second.error().message;
  ASSERT_EQ(second->code(), kOk) << second->message();
  ASSERT_GE(second->dump_stage2().dump().mappings_size(), 1);
  const auto& last = page1.dump().mappings(1).range();
  EXPECT_GE(second->dump_stage2().dump().mappings(0).range().start(), last.start() + last.size());
  std::string tampered = page1.next_page_token();
  tampered[3] = tampered[3] == '0' ? '1' : '0';
  auto refused = vm.call(dump_request(2, tampered), kRequestTimeout);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->code(), kInvalidArgument);
  EXPECT_EQ(refused->message().rfind("page_token:", 0), 0u) << refused->message();
  auto all = vm.call(dump_request(10000), kRequestTimeout);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->code(), kOk) << all->message();
  uint64_t ballooned = 0;
  for (const auto& mapping : all->dump_stage2().dump().mappings()) {
    if (mapping.state().backing() == hvmm::v1::BACKING_BALLOONED) {
      ballooned += mapping.range().size();
    }
  }
  EXPECT_GT(ballooned, 0u) << "the balloon's pages are in the dump";
}

// Stage 1 through the guest (KERNEL_ALL), stage 2 in the VMM (when implemented).
inline void shootdowns(VmProcessHarness& vm) {
  auto stage1 = vm.call(stage1_request(hvmm::v1::STAGE1_SCOPE_KERNEL_ALL), kRequestTimeout);
  ASSERT_TRUE(stage1.ok()) << stage1.error().message;
  ASSERT_EQ(stage1->code(), kOk) << stage1->message();
  EXPECT_EQ(stage1->tlb_shootdown().stage(), hvmm::v1::TLB_STAGE_1);
  EXPECT_GE(stage1->tlb_shootdown().stage1().cpus(), 1u);
  EXPECT_EQ(stage1->tlb_shootdown().stage1().method(), "full");
  EXPECT_GT(stage1->tlb_shootdown().latency_ns(), 0u);
  supervisor::Request stage2;
  stage2.mutable_tlb_shootdown()->set_stage(hvmm::v1::TLB_STAGE_2);
  auto done = vm.call(stage2, kRequestTimeout);
  ASSERT_TRUE(done.ok()) << done.error().message;
  if (ok_or_not_yet(*done, "stage-2 shootdown")) {
    EXPECT_GT(done->tlb_shootdown().latency_ns(), 0u);
    EXPECT_FALSE(done->tlb_shootdown().stage2().mechanism().empty());
  }
}

// Requests a VM answers with an error naming the field, and it keeps serving.
inline void bad_requests(VmProcessHarness& vm) {
  supervisor::Request misaligned;
  misaligned.mutable_age()->mutable_range()->set_start(0x1001);
  misaligned.mutable_age()->mutable_range()->set_size(0x1000);
  auto age = vm.call(misaligned, kRequestTimeout);
  ASSERT_TRUE(age.ok());
  EXPECT_EQ(age->code(), kInvalidArgument);
  EXPECT_EQ(age->message().rfind("range:", 0), 0u) << age->message();
  auto empty = vm.call(supervisor::Request(), kRequestTimeout);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->code(), kInvalidArgument);
  EXPECT_EQ(empty->message().rfind("body:", 0), 0u) << empty->message();
  auto too_big = vm.call(balloon_request(uint64_t{1} << 40, 0), kRequestTimeout);
  ASSERT_TRUE(too_big.ok());
  EXPECT_EQ(too_big->code(), kInvalidArgument);
  EXPECT_EQ(too_big->message().rfind("target_bytes:", 0), 0u) << too_big->message();
  auto page = vm.call(dump_request(10001), kRequestTimeout);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->code(), kInvalidArgument);
  EXPECT_EQ(page->message().rfind("page_size:", 0), 0u) << page->message();
  auto scope = vm.call(stage1_request(hvmm::v1::STAGE1_SCOPE_UNSPECIFIED), kRequestTimeout);
  ASSERT_TRUE(scope.ok());
  EXPECT_EQ(scope->code(), kInvalidArgument);
  EXPECT_EQ(scope->message().rfind("stage1.scope:", 0), 0u) << scope->message();
  auto stats = vm.call(stats_request(), kRequestTimeout);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->code(), kOk) << "the VM keeps serving";
}

// The subscriptions: the translator's and the watch's (which has sent events).
inline void subscriptions(VmProcessHarness& vm) {
  supervisor::Request request;
  request.mutable_list_subscriptions();
  auto listed = vm.call(request, kRequestTimeout);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->code(), kOk) << listed->message();
  bool translator = false;
  bool watch = false;
  for (const auto& sub : listed->list_subscriptions().subscriptions()) {
    translator |= sub.owner() == "translator";
    if (sub.owner() == "watch") {
      watch = true;
      EXPECT_GT(sub.events_sent(), 0u);
      EXPECT_GT(sub.invalidations_seen(), 0u);
    }
  }
  EXPECT_TRUE(translator);
  EXPECT_TRUE(watch);
  EXPECT_GT(listed->list_subscriptions().invalidations(), 0u);
}

// Reclaim on request (when implemented) and the figures of the engine's own epochs.
inline void reclaim_requests(VmProcessHarness& vm) {
  supervisor::Request epochs;
  epochs.mutable_reclaim()->set_epochs(2);
  auto ran = vm.call(epochs, kRequestTimeout);
  ASSERT_TRUE(ran.ok());
  ok_or_not_yet(*ran, "reclaim now");
  supervisor::Request bad;
  bad.mutable_reclaim()->set_epochs(101);
  auto refused = vm.call(bad, kRequestTimeout);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->code(), kInvalidArgument);
  EXPECT_EQ(refused->message().rfind("epochs:", 0), 0u) << refused->message();
  supervisor::Request policy;
  policy.mutable_reclaim()->set_set_policy("cold=0");
  auto bad_policy = vm.call(policy, kRequestTimeout);
  ASSERT_TRUE(bad_policy.ok());
  EXPECT_EQ(bad_policy->code(), kInvalidArgument);
  EXPECT_EQ(bad_policy->message().rfind("set_policy:", 0), 0u) << bad_policy->message();
}

// Check the memory figures of a running guest-kernel VM of `memory` bytes.
inline void memory_stats(VmProcessHarness& vm, uint64_t memory, bool reclaim) {
  auto stats = vm.call(stats_request(), kRequestTimeout);
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  ASSERT_EQ(stats->code(), kOk) << stats->message();
  const auto& figures = stats->get_memory_stats().stats();
  EXPECT_EQ(figures.memory_bytes(), memory);
  EXPECT_GT(figures.host().rss_bytes(), 0u);
  EXPECT_GT(figures.host().memfd_allocated_bytes(), 0u);
  EXPECT_GT(figures.pages().resident(), 0u);
  EXPECT_TRUE(figures.balloon().present());
  EXPECT_EQ(figures.reclaim().enabled(), reclaim);
  EXPECT_GT(figures.faults_size(), 0) << "the guest's first touches were counted";
  EXPECT_GT(figures.time_unix_ns(), 0u);
}

// Shutdown through the guest: Exiting with the status, and the process exits with it.
inline void shut_down(VmProcessHarness& vm, int status) {
  auto answered = vm.call(shutdown_request(status), kRequestTimeout);
  ASSERT_TRUE(answered.ok()) << answered.error().message;
  EXPECT_EQ(answered->code(), kOk) << answered->message();
  auto exiting =
      vm.wait_event([](const supervisor::Event& e) { return e.has_exiting(); }, kExitTimeout);
  ASSERT_TRUE(exiting.ok()) << exiting.error().message << "\n" << vm.output();
  EXPECT_EQ(exiting->exiting().status(), status) << exiting->exiting().reason();
  const VmProcessExit exit = vm.wait_exit(kExitTimeout);
  EXPECT_TRUE(exit.exited) << "signal " << exit.signal << "\n" << vm.output();
  EXPECT_EQ(exit.status, status);
}

// The Launch of the whole-life scenario: reclaim with a small pool and a swap file, so that
// reclaim epochs, pool and swap all run.
inline supervisor::Launch whole_life_launch(const std::string& swap_path) {
  supervisor::Launch launch = guest_kernel_launch("whole-life", 7);
  launch.mutable_spec()->set_reclaim_policy("period=200ms,cold=2,budget=off,pool=1M");
  launch.mutable_spec()->set_reclaim_swap(swap_path);
  return launch;
}

// Boot to shutdown with every request kind the daemon uses; faults arrive as events.
inline void whole_life(VmProcessHarness& vm, const supervisor::Launch& launch) {
  ASSERT_NO_FATAL_FAILURE(launch_and_wait_started(vm, launch));
  ASSERT_NO_FATAL_FAILURE(wait_for_guest(vm));
  ASSERT_NO_FATAL_FAILURE(
      memory_stats(vm, launch.spec().memory_bytes(), launch.spec().has_reclaim_policy()));
  ASSERT_NO_FATAL_FAILURE(balloon_with_notifier_events(vm, 32 * kMiB));
  ASSERT_NO_FATAL_FAILURE(dump_two_pages(vm));
  ASSERT_NO_FATAL_FAILURE(shootdowns(vm));
  ASSERT_NO_FATAL_FAILURE(subscriptions(vm));
  ASSERT_NO_FATAL_FAILURE(reclaim_requests(vm));
  ASSERT_NO_FATAL_FAILURE(bad_requests(vm));
  auto fault = vm.wait_event(
      [](const supervisor::Event& e) {
        return e.has_fault() && e.fault().kind() == hvmm::v1::FAULT_KIND_MISSING;
      },
      kRequestTimeout);
  ASSERT_TRUE(fault.ok()) << "no MISSING fault event: " << fault.error().message;
  EXPECT_EQ(fault->fault().vm(), launch.name());
  EXPECT_EQ(fault->fault().vmid(), launch.vmid());
  ASSERT_NO_FATAL_FAILURE(shut_down(vm, 0));
}

}  // namespace hvmm::testing
